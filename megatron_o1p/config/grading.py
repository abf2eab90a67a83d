"""GradingConfig: how `o1p grade` and `o1p evaluate` grade a response (extraction + math-verify).

One flag set for both commands. The flags are `--extract`, `--grade-timeout`,
`--grade-workers` and `--grade-memory-limit-mb`; `o1p grade`'s historical spellings
`--timeout`, `--workers` and `--memory-limit-mb` are aliases of the same flags. `build()` makes
the math-verify pool (`grading/equivalence.Grader`) with one worker-count rule for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from megatron_o1p.config.choices import EXTRACT_MODES
from megatron_o1p.config.flags import Flags, flag, require
from megatron_o1p.grading.equivalence import DEFAULT_MEMORY_LIMIT_MB, Grader

MAX_DEFAULT_WORKERS = 16
"""Each worker holds sympy (~60 MB resident); at 6-60 ms per answer 16 workers already grade a
100k-row file in minutes, so `--grade-workers 0` stops there even on a 128-core node."""


@dataclass(frozen=True)
class GradingConfig(Flags):
    """Answer extraction and math-verify settings (flags map one-to-one onto fields)."""

    extract_mode: str = flag(
        "last",
        "which \\boxed{} is the answer: last (after </think>, else a #### line) or first "
        "(the official O1-Pruner extractor: first closed box of the whole response)",
        name="--extract",
        choices=EXTRACT_MODES,
    )
    """See `grading/extract.py`."""
    timeout_s: int = flag(
        5,
        "whole seconds per math-verify parse or comparison (an answer gets at most about 3x)",
        name="--grade-timeout",
        aliases=("--timeout",),
    )
    """Whole seconds >= 1 (math-verify's signal.alarm takes integers)."""
    workers: int = flag(
        0,
        f"math-verify worker processes on this machine; 0 = one per CPU core, at most "
        f"{MAX_DEFAULT_WORKERS}",
        name="--grade-workers",
        aliases=("--workers",),
    )
    """Processes; 0 = `num_workers` picks one per core, at most MAX_DEFAULT_WORKERS."""
    memory_limit_mb: int = flag(
        DEFAULT_MEMORY_LIMIT_MB,
        "address-space limit per math-verify worker in MiB; 0 = no limit",
        name="--grade-memory-limit-mb",
        aliases=("--memory-limit-mb",),
    )
    """MiB of RLIMIT_AS per worker; 0 = none."""

    def __post_init__(self) -> None:
        require(
            self.extract_mode in EXTRACT_MODES,
            f"--extract must be one of {EXTRACT_MODES}, got {self.extract_mode!r}; use --extract "
            "last (default) or --extract first (official O1-Pruner code)",
        )
        whole = isinstance(self.timeout_s, int) and not isinstance(self.timeout_s, bool)
        require(
            whole and self.timeout_s >= 1,
            f"--grade-timeout must be whole seconds >= 1, got {self.timeout_s!r}",
        )
        require(
            self.workers >= 0,
            f"--grade-workers must be >= 0 (0 = one per core), got {self.workers}",
        )
        require(
            self.memory_limit_mb >= 0,
            f"--grade-memory-limit-mb must be >= 0 (0 = no limit), got {self.memory_limit_mb}",
        )

    @property
    def num_workers(self) -> int:
        """Worker processes to start: `workers`, or one per core (at most 16) for 0."""
        return self.workers or min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)

    def build(self) -> Grader:
        """The math-verify pool (nothing starts yet); use it as a context manager."""
        return Grader(self.num_workers, self.timeout_s, self.memory_limit_mb)
