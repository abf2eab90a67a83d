"""The embedded demo, stage 0: HF <-> Megatron conversion with proven parity on tiny models.

    o1p demo [--workdir runs/demo]

Builds a tiny random Qwen2 (tied, qkv bias) and Llama (untied, SentencePiece) with locally
trained tokenizers, then runs the commands a user would: `o1p convert hf-to-mcore`, `torchrun
... o1p convert verify` at TP=1 and TP=2 x PP=2, `o1p convert mcore-to-hf`, and checks the round
trip is bitwise. The length-harmonizing pipeline (sample, grade, build-dataset, train,
evaluate) extends this demo as those stages land.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from megatron_o1p.errors import SetupError


def _run(cmd: list, log) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    shown = " ".join(str(c) for c in cmd).replace(sys.executable, "python")
    log(f"$ {shown}")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SetupError(f"demo step failed ({shown}): {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def _tensors(hf_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(hf_dir.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def run_roundtrip_demo(workdir: Path, log=print) -> list[dict]:
    """Run the conversion demo in `workdir`; returns one result row per model."""
    from megatron_o1p.testing.tiny_models import build_tiny_llama, build_tiny_qwen2

    o1p = [sys.executable, "-m", "megatron_o1p"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    rows = []
    for name, build in (("qwen2", build_tiny_qwen2), ("llama", build_tiny_llama)):
        start = time.perf_counter()
        base = workdir / name
        shutil.rmtree(base, ignore_errors=True)
        hf_dir = build(base / "hf")
        mcore, back = base / "mcore", base / "hf_roundtrip"
        _run(o1p + ["convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", mcore], log)
        diffs = {}
        for tp, pp in ((1, 1), (2, 2)):
            proc = _run(
                torchrun
                + [
                    "--nproc-per-node",
                    tp * pp,
                    "-m",
                    "megatron_o1p",
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
                ],
                log,
            )
            line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("verify:"))
            log("  " + line)
            diffs[f"TP{tp}xPP{pp}"] = float(re.search(r"logprob diff\| = ([0-9.e+-]+)", line)[1])
        _run(o1p + ["convert", "mcore-to-hf", "--mcore-dir", mcore, "--out", back], log)
        original, returned = _tensors(hf_dir), _tensors(back)
        bitwise = original.keys() == returned.keys() and all(
            torch.equal(original[k], returned[k]) for k in original
        )
        rows.append(
            {
                "model": name,
                "params": sum(t.numel() for t in original.values()),
                **{f"max |logprob diff| {k}": v for k, v in diffs.items()},
                "round trip bitwise": bitwise,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return rows


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
