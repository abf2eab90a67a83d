"""A run's hf/ side folder (config, tokenizer) is copied whole or not at all, once: a copy
killed half way leaves only a temporary that the next save removes, never a partial hf/."""

from megatron_o1p.atomic import is_temporary
from megatron_o1p.training.checkpointing import _copy_hf_side_dir


def _source(tmp_path):
    source = tmp_path / "mcore" / "hf"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "sub" / "tokenizer.json").write_text("tok")
    return source


def test_copies_the_folder_once(tmp_path):
    source, run = _source(tmp_path), tmp_path / "run"
    run.mkdir()
    _copy_hf_side_dir(str(source), run)
    assert (run / "hf" / "sub" / "tokenizer.json").read_text() == "tok"
    (source / "config.json").write_text('{"changed": 1}')
    _copy_hf_side_dir(str(source), run)  # a later save keeps the first copy
    assert (run / "hf" / "config.json").read_text() == "{}"
    assert not [p for p in run.iterdir() if is_temporary(p)]


def test_a_killed_copy_is_replaced_whole(tmp_path):
    source, run = _source(tmp_path), tmp_path / "run"
    stale = run / ".hf.tmp-999999"  # what a process killed mid-copy leaves
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("partial")
    _copy_hf_side_dir(str(source), run)
    assert sorted(p.name for p in run.iterdir()) == ["hf"]
    assert (run / "hf" / "config.json").read_text() == "{}"


def test_no_source_folder_copies_nothing(tmp_path):
    _copy_hf_side_dir(None, tmp_path)
    _copy_hf_side_dir(str(tmp_path / "absent"), tmp_path)
    assert list(tmp_path.iterdir()) == []
