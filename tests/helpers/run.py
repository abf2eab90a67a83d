"""Run `o1p` as users do: `python -m megatron_o1p ...` or `torchrun ... -m megatron_o1p ...`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def run_o1p(*args, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m megatron_o1p <args>`; returns the completed process (text output)."""
    cmd = [sys.executable, "-m", "megatron_o1p", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def run_torchrun(
    nproc: int, *args, module: bool = True, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess:
    """`torchrun --nproc-per-node N -m megatron_o1p <args>` (or a script when module=False)."""
    target = ["-m", "megatron_o1p"] if module else []
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--standalone",
        *target,
        *map(str, args),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-6000:]}"
        )
    return proc


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one-line `o1p ...: error:` message of a failed run (asserts there is exactly one)."""
    lines = [ln for ln in proc.stderr.splitlines() if ": error: " in ln]
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(set(lines)) == 1, proc.stderr[-3000:]
    return lines[0]
