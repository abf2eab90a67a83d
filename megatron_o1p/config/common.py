"""Flags that several commands share by name, each defined here once.

A config field takes one with `shared("out", help=...)`: the flag string, its type and its
meaning come from this table; the field may narrow the help ("output directory of rollout
shards") and set its own default. So `--out` means "where this stage writes" in every command
and is spelled in one place.

Tested by tests/unit/test_cli.py (each flag defined once) and tests/unit/config/test_flags.py.
"""

from pathlib import Path

SHARED_FLAGS: dict[str, dict] = {
    "out": {"type": Path, "help": "where this stage writes its output"},
    "data": {"type": Path, "help": "dataset parquet from `o1p build-dataset`"},
    "rollouts": {"type": Path, "help": "rollout shards: an `o1p sample` or `o1p grade` folder"},
    "hf_dir": {"type": Path, "help": "HF model folder (safetensors, config.json, tokenizer)"},
    "mcore_dir": {"type": Path, "help": "megatron checkpoint folder"},
    "seed": {"type": int, "help": "base seed"},
    "micro_batch_size": {"type": int, "help": "sequences per micro-batch on each rank"},
    "overwrite": {"help": "replace an output written with other settings"},
    "no_progress": {"help": "no progress bar"},
}
