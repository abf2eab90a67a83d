"""Problem loaders (JSONL, JSON list, parquet, presets, ids), prompt building, shard writing."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from megatron_o1p.data.problems import ProblemSource, load_problems
from megatron_o1p.data.prompts import FAST_SUFFIX, SYSTEM_PROMPT, build_messages
from megatron_o1p.data.shards import check_config, complete_shards, read_shards, write_shard
from megatron_o1p.errors import ConfigError, DataError, SetupError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_plain_jsonl_and_json_list_and_parquet_agree(tmp_path):
    rows = [{"problem": "1+1?", "answer": "2"}, {"problem": "2*3?", "answer": 6}]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    pq.write_table(
        pa.Table.from_pylist([{**r, "answer": str(r["answer"])} for r in rows]),
        tmp_path / "p.parquet",
    )
    for name in ("p.jsonl", "p.json", "p.parquet"):
        if name == "p.jsonl":
            _jsonl(tmp_path / name, rows)
        got = load_problems(ProblemSource(str(tmp_path / name)))
        assert [(p.problem_id, p.problem, p.answer) for p in got] == [
            ("0", "1+1?", "2"),
            ("1", "2*3?", "6"),
        ], name


def test_math_preset_falls_back_to_last_box_of_solution(tmp_path):
    path = _jsonl(
        tmp_path / "math.jsonl",
        [
            {"problem": "a", "answer": "7", "solution": "\\boxed{8}"},
            {"problem": "b", "solution": "first \\boxed{1}, finally \\boxed{\\frac{1}{2}}"},
            {"problem": "c", "answer": "", "solution": "so \\boxed{3}"},
        ],
    )
    got = load_problems(ProblemSource(str(path), preset="math"))
    assert [p.answer for p in got] == ["7", "\\frac{1}{2}", "3"]


def test_gsm8k_preset_and_id_field(tmp_path):
    path = _jsonl(
        tmp_path / "gsm.jsonl",
        [
            {"uid": "q7", "question": "How many?", "answer": "3 + 4 = 7\n#### 1,007"},
            {"uid": 9, "question": "And now?", "answer": "#### -2"},
        ],
    )
    got = load_problems(ProblemSource(str(path), preset="gsm8k", id_field="uid"))
    assert [(p.problem_id, p.problem, p.answer) for p in got] == [
        ("q7", "How many?", "1007"),
        ("9", "And now?", "-2"),
    ]


def test_field_flags_override_preset(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", [{"q": "hi?", "a": "yes", "answer": "no"}])
    (p,) = load_problems(
        ProblemSource(str(path), preset="math", problem_field="q", answer_field="a")
    )
    assert (p.problem, p.answer) == ("hi?", "yes")


@pytest.mark.parametrize(
    "rows, kwargs, needle",
    [
        ([{"problem": "a", "answer": "1"}, {"answer": "2"}], {}, "row 1: no problem text"),
        ([{"problem": "a"}], {}, "row 0: no gold answer"),
        ([{"question": "a", "answer": "no hashes"}], {"preset": "gsm8k"}, "#### N"),
        ([{"problem": "a", "solution": "none"}], {"preset": "math"}, "\\boxed{}"),
        (
            [{"id": 1, "problem": "a", "answer": "1"}, {"id": 1, "problem": "b", "answer": "2"}],
            {"id_field": "id"},
            "row 1: duplicate problem id '1'",
        ),
        ([{"problem": "a", "answer": "1"}], {"id_field": "id"}, "id column `id`"),
        ([], {}, "no problems"),
    ],
)
def test_bad_rows_name_file_row_and_fix(tmp_path, rows, kwargs, needle):
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_problems(ProblemSource(str(path), **kwargs))
    message = str(info.value)
    assert str(path) in message and needle in message and "\n" not in message


def test_bad_json_line_and_unknown_preset(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"problem": "a", "answer": "1"}\n{oops\n')
    with pytest.raises(DataError, match="row 1: line 2 is not valid JSON"):
        load_problems(ProblemSource(str(path)))
    with pytest.raises(ConfigError, match="unknown preset"):
        ProblemSource(str(path), preset="aime")


def test_hub_name_without_datasets_is_one_line_setup_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(SetupError, match="pip install datasets"):
        load_problems(ProblemSource("openai/gsm8k", preset="gsm8k"))


def test_messages_system_prompt_and_fast_suffix():
    normal = build_messages("What is 2+2?")
    assert normal == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert "\\boxed{}" in SYSTEM_PROMPT
    fast = build_messages("What is 2+2?", speed="fast")
    assert fast[-1]["content"] == "What is 2+2?\n" + FAST_SUFFIX
    assert FAST_SUFFIX == (
        "Be confident. Solving this problem quickly with less pause, stop or reflection."
    )
    with pytest.raises(ConfigError):
        build_messages("x", speed="slow")


def test_prompt_ids_follow_the_chat_template(tiny_qwen2):
    from megatron_o1p.data.prompts import load_tokenizer, prompt_ids

    tok = load_tokenizer(tiny_qwen2)
    ids = prompt_ids(tok, "What is 2+2?", speed="fast")
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT)
    assert FAST_SUFFIX in text and text.endswith("<|im_start|>assistant\n")


def test_shards_are_atomic_listed_and_config_checked(tmp_path):
    out = tmp_path / "out"
    check_config(out, {"a": 1, "t": (0.5, 1)})
    check_config(out, {"a": 1, "t": [0.5, 1]})  # same after JSON normalisation
    table = pa.table({"x": [1, 2]})
    write_shard(out, 3, table)
    write_shard(out, 0, pa.table({"x": [0]}))
    (out / "part-00001.parquet.tmp").write_bytes(b"half a shard")  # a killed writer
    assert list(complete_shards(out)) == [0, 3]
    assert read_shards(out).column("x").to_pylist() == [0, 1, 2]
    with pytest.raises(ConfigError) as info:
        check_config(out, {"a": 2, "t": [0.5, 1]})
    assert "a: recorded 1, now 2" in str(info.value) and "--overwrite" in str(info.value)
    check_config(out, {"a": 2}, overwrite=True)
    assert complete_shards(out) == {} and not list(out.glob("*.tmp"))
    assert json.loads((out / "config.json").read_text()) == {"a": 2}
    with pytest.raises(DataError, match="no complete part"):
        read_shards(out)
