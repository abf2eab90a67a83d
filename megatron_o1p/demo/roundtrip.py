"""The embedded demo, stage 0: HF <-> Megatron conversion with proven parity on tiny models.

    o1p demo --conversion-only [--workdir runs/demo]

Builds a tiny random Qwen2 (tied, qkv bias) and Llama (untied, SentencePiece) with locally
trained tokenizers, then runs the commands a user would: `o1p convert hf-to-mcore`, `o1p
convert verify` at TP=1 and (under torchrun) at TP=2 x PP=2, `o1p convert mcore-to-hf`, and
checks the round trip is bitwise. Commands run through the pipeline's `Runner`
(`demo/runner.py`): their output goes to `demo.log` in the work folder, and the verify lines
are echoed.

Tested by its steps' own tests, tests/e2e/test_convert_cli.py and tests/distributed/test_verify.py;
the table it prints (`o1p demo --conversion`) has no test of its own.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from megatron_o1p.demo.runner import Runner

# The parallel layouts `o1p convert verify` checks against HF: (TP, PP).
_LAYOUTS = ((1, 1), (2, 2))


def _tensors(hf_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(hf_dir.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def run_roundtrip_demo(workdir: Path, log=print) -> list[dict]:
    """Run the conversion demo in `workdir`; returns one result row per model."""
    from megatron_o1p.testing.tiny_models import build_tiny_llama, build_tiny_qwen2

    workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(workdir, log)
    return [
        _round_trip(runner, workdir / name, name, build)
        for name, build in (("qwen2", build_tiny_qwen2), ("llama", build_tiny_llama))
    ]


def _round_trip(runner: Runner, base: Path, name: str, build: Callable[[Path], Path]) -> dict:
    """Build one tiny HF model in `base/hf`, convert it, verify every layout, convert back."""
    import torch

    start = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    hf_dir = build(base / "hf")
    mcore, back = base / "mcore", base / "hf_roundtrip"
    runner.o1p("convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", mcore)
    diffs = {}
    for tp, pp in _LAYOUTS:
        out = runner.o1p(
            "convert",
            "verify",
            "--hf-dir",
            hf_dir,
            "--mcore-dir",
            mcore,
            "--tensor-model-parallel-size",
            tp,
            "--pipeline-model-parallel-size",
            pp,
            nproc=tp * pp,
        )
        line = next(ln for ln in out.splitlines() if ln.startswith("verify:"))
        diffs[f"TP{tp}xPP{pp}"] = float(re.search(r"logprob diff\| = ([0-9.e+-]+)", line)[1])
    runner.o1p("convert", "mcore-to-hf", "--mcore-dir", mcore, "--out", back)
    original, returned = _tensors(hf_dir), _tensors(back)
    bitwise = original.keys() == returned.keys() and all(
        torch.equal(original[k], returned[k]) for k in original
    )
    return {
        "model": name,
        "params": sum(t.numel() for t in original.values()),
        **{f"max |logprob diff| {k}": v for k, v in diffs.items()},
        "round trip bitwise": bitwise,
        "seconds": round(time.perf_counter() - start, 1),
    }


def format_table(rows: list[dict]) -> str:
    keys = list(rows[0])
    cells = [
        [
            str(r[k]) if not isinstance(r[k], float) or k == "seconds" else f"{r[k]:.2e}"
            for k in keys
        ]
        for r in rows
    ]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = [
        " | ".join(k.ljust(w) for k, w in zip(keys, widths)),
        "-|-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
