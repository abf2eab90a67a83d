"""How the demos run `o1p` commands and skip the stages a rerun finds complete.

`Runner.o1p(...)` runs one `o1p` command as a subprocess (`torchrun` for several ranks), the
way a user types it: its full output goes to `demo.log`, progress lines are echoed. `Stages`
keeps one marker file per stage, recording the settings it ran with; a rerun with the same
settings skips the stage.

Tested by tests/unit/demo/test_pipeline.py and tests/e2e/test_demo.py (every stage through both,
then a rerun that skips them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from megatron_o1p.atomic import write_json
from megatron_o1p.errors import SetupError


class Runner:
    """Runs `o1p` commands as subprocesses, logging everything, echoing progress lines."""

    def __init__(self, workdir: Path, log=print):
        self.workdir = workdir
        self.log = log
        self.log_path = workdir / "demo.log"

    def o1p(self, *args, nproc: int = 1) -> str:
        """Run `o1p ARGS` (under torchrun with `nproc` ranks when > 1); returns its stdout.

        Raises:
            SetupError: the command failed; its output is in `demo.log`.
        """
        if nproc > 1:
            head = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd = head + ["--nproc-per-node", str(nproc), "-m", "megatron_o1p", *args]
        else:
            cmd = [sys.executable, "-m", "megatron_o1p", *args]
        cmd = [str(c) for c in cmd]
        shown = " ".join(cmd).replace(sys.executable + " -m torch.distributed.run", "torchrun")
        shown = shown.replace(sys.executable + " -m megatron_o1p", "o1p")
        self.log(f"  $ {shown}")
        out_lines = []
        with self.log_path.open("a") as log_file:
            log_file.write(f"\n$ {shown}\n")
            log_file.flush()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=_env(nproc), bufsize=1
            )
            for line in proc.stdout:
                log_file.write(line)
                out_lines.append(line)
                if _is_progress(line):
                    self.log("    " + line.rstrip())
            code = proc.wait()
        if code:
            raise SetupError(
                f"demo stage failed (exit {code}): {shown}; see {self.log_path} for its output"
            )
        return "".join(out_lines)


def _env(nproc: int) -> dict:
    """The subprocess environment: offline, quiet, and threads that fit the CPU cores."""
    # Several ranks share the cores: one thread each.
    default_threads = str(min(2, os.cpu_count() or 1))
    threads = "1" if nproc > 1 else os.environ.get("OMP_NUM_THREADS", default_threads)
    return dict(
        os.environ,
        OMP_NUM_THREADS=threads,
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONWARNINGS="ignore",
    )


def _is_progress(line: str) -> bool:
    text = line.strip()
    return text.startswith(("iteration", "o1p ", "|", "step-0", "truncated")) or "PASS" in text


def fingerprint(settings) -> str:
    """A short stable hash of JSON-able settings: a stage's marker key."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stages:
    """Stage bookkeeping: a stage is done when its marker holds the same settings."""

    def __init__(self, workdir: Path, log, total: int = 0):
        self.workdir, self.log = workdir, log
        self.count, self.total = 0, total
        self.times: dict[str, float] = {}

    def run(self, name: str, settings: dict, body: Callable[[], object], outputs=()) -> None:
        """Run `body()` as stage `name`, unless its marker records the same `settings`.

        A stage that starts writes its marker as started; one that ends marks it done. A stage
        that died half-way under the same settings resumes (`o1p sample` and `o1p evaluate`
        keep what their folders hold); under other settings its `outputs` are removed first,
        because those commands resume by the model's path, not its weights, and a retrained
        model at the same path would be taken for the one they sampled."""
        self.count += 1
        marker = self.workdir / ".stages" / f"{name}.json"
        key = fingerprint(settings)
        recorded = json.loads(marker.read_text()) if marker.is_file() else {}
        same_settings = recorded.get("key") == key
        if same_settings and recorded.get("done", True):
            self.log(f"[{self.count}/{self.total}] {name}: done earlier, skipped")
            return
        self.log(f"[{self.count}/{self.total}] {name}")
        if not same_settings:
            for path in outputs:
                shutil.rmtree(path, ignore_errors=True)
        write_json(marker, {"key": key, "settings": settings, "done": False}, indent=None)
        start = time.perf_counter()
        body()
        seconds = time.perf_counter() - start
        self.times[name] = seconds
        record = {"key": key, "settings": settings, "seconds": seconds, "done": True}
        write_json(marker, record, indent=None)
        self.log(f"    {name}: {seconds:.0f} s")
