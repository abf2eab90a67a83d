"""JSON lines read with the numbers errors need: the data row (0-based, blank lines skipped)
and the file line (1-based). Used by the problem loader and by `o1p grade`.

Tested by its callers' tests: tests/unit/data/test_problems.py and tests/e2e/test_grade_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from megatron_o1p.errors import DataError


def jsonl_records(path: Path) -> Iterator[tuple[int, int, object]]:
    """(row, line number, value) for each non-blank line of a JSON-lines file.

    Raises:
        DataError: a line that is not valid JSON (names the file, row and line).
    """
    row = 0
    with Path(path).open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"line {line_no} is not valid JSON ({err.msg}); fix or drop the line",
                    path=str(path),
                    row=row,
                ) from err
            yield row, line_no, value
            row += 1
