"""The checkpoint layout: folder names, the tracker and o1p_checkpoint.json as written."""

import json

from megatron_o1p.checkpoint import layout


def test_iteration_folder_names():
    assert layout.iteration_folder_name(100) == "iter_0000100"
    assert layout.iteration_folder_name("7") == "iter_0000007"
    assert layout.iteration_folder_name(layout.RELEASE) == "release"


def test_sharding_metadata_is_a_fresh_dict():
    first = layout.sharding_metadata()
    first["dp_cp_group"] = object()  # megatron adds groups into the dict it is given
    assert layout.sharding_metadata() == {
        "non_homogeneous_layers": True,
        "singleton_local_shards": False,
    }


def test_tracker_and_meta_are_written_whole(tmp_path):
    layout.write_tracker(tmp_path, 12)
    layout.write_checkpoint_meta(tmp_path, {"format_version": 1, "iteration": 12})
    assert (tmp_path / layout.TRACKER).read_text() == "12\n"
    text = (tmp_path / layout.CHECKPOINT_META).read_text()
    assert text == json.dumps({"format_version": 1, "iteration": 12}, indent=2) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [layout.TRACKER, layout.CHECKPOINT_META]
    )  # no temporary left beside them
