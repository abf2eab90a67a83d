"""The demo's base model, shipped: the long-thought SFT model `o1p demo` would otherwise train.

Training it is most of the demo's first run (800 SFT iterations, about 400 s of 2 idle
cores). The project ships the model that `o1p demo --train-base` produced (HF safetensors,
config and tokenizer, a few MB) in `megatron_o1p/demo/base_model/`, with the marker settings
it was trained with (`o1p_base_settings.json`). The demo uses it only when those settings are
the ones the current code would train with (the task, SFT set and recipe keys of
`DemoContext.base_settings`), so a change to the task or the base recipe retrains rather than
silently reusing a stale model. `--train-base` always retrains.

To refresh it after such a change: `o1p demo --train-base --workdir W`, then
`python tools/ship_demo_base.py W`.

Tested by tests/unit/demo/test_shipped_base.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from megatron_o1p.atomic import atomic_dir

SHIPPED_DIR = Path(__file__).resolve().parent / "base_model"
RECORD_NAME = "o1p_base_settings.json"
_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


def shipped_base_for(settings: dict, shipped: Path = SHIPPED_DIR) -> Path | None:
    """The shipped model folder when it was trained with exactly `settings`, else None."""
    record = shipped / RECORD_NAME
    if not record.is_file() or not (shipped / "model.safetensors").is_file():
        return None
    return shipped if json.loads(record.read_text())["settings"] == as_json(settings) else None


def as_json(settings: dict) -> dict:
    """`settings` as JSON reads it back (tuples become lists), for comparing with a record."""
    return json.loads(json.dumps(settings))


def ship_base(hf_dir: Path, settings: dict, shipped: Path = SHIPPED_DIR) -> Path:
    """Copy a trained base model's HF files and its settings record into `shipped`."""
    with atomic_dir(shipped, replace=True) as tmp:
        for name in _FILES:
            if (hf_dir / name).is_file():
                shutil.copy2(hf_dir / name, tmp / name)
        record = {"settings": settings, "produced_by": "o1p demo --train-base"}
        (tmp / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return shipped


def copy_shipped(shipped: Path, hf_dir: Path) -> Path:
    """The shipped model as the workdir's base HF folder (without the settings record)."""
    with atomic_dir(hf_dir, replace=True) as tmp:
        for item in shipped.iterdir():
            if item.name != RECORD_NAME:
                shutil.copy2(item, tmp / item.name)
    return hf_dir
