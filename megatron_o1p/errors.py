"""The project's exception hierarchy.

`cli.py` catches `O1pError`, prints its message as one line (`o1p <cmd>: error: ...`) and exits
non-zero; any other exception is a bug and keeps its traceback. A message says what is wrong, the
value seen, and what to do.

Tested by tests/unit/test_cli.py and the one-line-error tests of each stage (e.g.
tests/unit/checkpoint/test_reader.py).
"""


class O1pError(Exception):
    """Base class of every error the user can fix."""


class ConfigError(O1pError):
    """Invalid flags, an unsupported model config, an impossible parallel layout."""


class DataError(O1pError):
    """Bad input data; names the file and, where known, the row."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}" + (f" row {row}" if row is not None else "") + ": "
        super().__init__(where + message)
        self.path = path
        self.row = row


class CheckpointError(O1pError):
    """Missing, incomplete or mismatched checkpoint files."""


class SetupError(O1pError):
    """The environment cannot run the request (missing package, no GPU, bad launch)."""


class TrainingError(O1pError):
    """Training cannot go on (a non-finite loss or gradient norm); names the iteration."""
