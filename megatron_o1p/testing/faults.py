"""Fault injection for the kill tests: named points where a test can hold a real run.

Production code marks the moments at which a crash matters with one call,

    fault_point("save.written", iteration=iteration)

which does nothing (one environment lookup) unless the environment variable `O1P_FAULT_POINT`
names that point. A test that sets

    O1P_FAULT_POINT="save.written:iteration=4"

gets, at the call whose name and context match, the line
`o1p test hook: paused at save.written (iteration=4)` on stdout, after which the process sleeps
(at most an hour, then it carries on) so the test can SIGKILL it inside that window of a real
run (`tests/distributed/test_train.py::test_sigkill_inside_a_save_leaves_the_previous_checkpoint`).
The value is `NAME` (matches every call of that point) or `NAME:KEY=VALUE[,KEY=VALUE...]`
(matches calls whose context has those values, compared as strings).

Points in use:

    save.written   checkpoint/saving.py: every rank's files are in `.iter_XXXXXXX.tmp`, which
                   is not renamed yet; the tracker names the previous checkpoint.
    save.renamed   checkpoint/saving.py: renamed to `iter_XXXXXXX` and `o1p_checkpoint.json`
                   replaced, but the tracker (the commit point) still names the previous one.
    dataset_cache.written  training/dataset_cache.py: the mmap copy of a training parquet is
                   complete in its temporary folder, not renamed yet (under the file's lock).
"""

from __future__ import annotations

import os
import time

ENV_VAR = "O1P_FAULT_POINT"
PAUSE_SECONDS = 3600
"""How long a matched point holds the process; the test kills it well before."""


def _matches(spec: str, name: str, context: dict) -> bool:
    point, _, conditions = spec.partition(":")
    if point != name:
        return False
    for condition in filter(None, conditions.split(",")):
        key, _, value = condition.partition("=")
        if key not in context or str(context[key]) != value:
            return False
    return True


def fault_point(name: str, **context) -> None:
    """Hold the process here if `O1P_FAULT_POINT` names this point (see the module docstring).

    Args:
        name: the point, e.g. "save.written".
        **context: values a test can select on, e.g. `iteration=4`.
    """
    spec = os.environ.get(ENV_VAR)
    if not spec or not _matches(spec, name, context):
        return
    where = ", ".join(f"{key}={value}" for key, value in context.items())
    print(f"o1p test hook: paused at {name} ({where})", flush=True)
    time.sleep(PAUSE_SECONDS)
