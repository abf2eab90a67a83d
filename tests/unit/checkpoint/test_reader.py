"""The checkpoint reader's preflight: tracker resolution and one-line errors for folders that
are not complete checkpoints (loading itself is tested by tests/distributed/)."""

import json

import pytest

from megatron_o1p.checkpoint import layout
from megatron_o1p.checkpoint.reader import (
    read_checkpoint_meta,
    resolve_iteration_dir,
    tracked_iteration,
)
from megatron_o1p.errors import CheckpointError


def _checkpoint(root, tracker: str, *, complete: bool = True, version: int = 1):
    (root / layout.TRACKER).write_text(tracker + "\n")
    (root / layout.CHECKPOINT_META).write_text(json.dumps({"format_version": version}))
    folder = root / layout.iteration_folder_name(tracker)
    folder.mkdir()
    (folder / "metadata.json").write_text("{}")
    if complete:
        (folder / ".metadata").write_bytes(b"")
    return folder


def test_tracker_names_the_iteration_folder(tmp_path):
    assert resolve_iteration_dir(tmp_path) == tmp_path  # no tracker: the folder itself
    assert tracked_iteration(tmp_path) is None
    folder = _checkpoint(tmp_path, "40")
    assert resolve_iteration_dir(tmp_path) == folder == tmp_path / "iter_0000040"
    assert tracked_iteration(tmp_path) == 40
    assert read_checkpoint_meta(tmp_path) == {"format_version": 1}


def test_release_is_not_a_training_iteration(tmp_path):
    assert _checkpoint(tmp_path, "release") == resolve_iteration_dir(tmp_path)
    assert tracked_iteration(tmp_path) is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "o1p_checkpoint.json: not found"),
        (lambda root: _checkpoint(root, "2", version=0), "format_version 0 is not 1"),
        (lambda root: _checkpoint(root, "2", complete=False), "incomplete megatron checkpoint"),
    ],
    ids=["no-meta", "old-version", "incomplete"],
)
def test_not_a_complete_checkpoint(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_meta(tmp_path)
