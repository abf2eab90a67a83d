"""Ship the base model a `o1p demo --train-base` run trained as the demo's shipped base.

    o1p demo --train-base --workdir W        # trains the base model (about 400 s)
    python tools/ship_demo_base.py W         # copies W/base/hf to megatron_o1p/demo/base_model/

Refuses a workdir whose base model was not trained there with the settings the current code
trains with (see `megatron_o1p/demo/shipped_base.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from megatron_o1p.demo.pipeline import DemoContext
from megatron_o1p.demo.settings import SIZES, DemoRecipe
from megatron_o1p.demo.shipped_base import as_json, ship_base

BASE_STAGE = "base model (long-thought SFT)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir", type=Path, help="the workdir of an `o1p demo --train-base` run")
    args = parser.parse_args(argv)
    ctx = DemoContext(args.workdir, SIZES["full"], DemoRecipe(), runner=None, stages=None)
    marker = args.workdir / ".stages" / f"{BASE_STAGE}.json"
    recorded = json.loads(marker.read_text())["settings"] if marker.is_file() else {}
    recorded.pop("trained_here", None)
    # base/sft_run exists only where the base model was trained, not copied from the shipped one
    trained = (args.workdir / "base" / "sft_run").is_dir()
    if recorded != as_json(ctx.base_settings) or not trained:
        print(
            f"ship_demo_base: {args.workdir} holds no base model trained with the current "
            "full-size settings; run `o1p demo --train-base --workdir W` first",
            file=sys.stderr,
        )
        return 2
    out = ship_base(ctx.base.hf, ctx.base_settings)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"ship_demo_base: wrote {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
