"""The demo's synthetic task: the workings add up, the first pass slips exactly where the
task says, checks fix it, and the tokenizer round-trips every response."""

import random

from megatron_o1p.demo import task


def test_working_is_column_addition_little_endian():
    working, result = task.column_working(12345, 67890, 5)
    assert working == "5+0+0=05,4+9+0=13,3+8+1=12,2+7+1=10,1+6+1=08"
    assert result == "53208" == str(12345 + 67890)[::-1]
    assert task.column_working(95, 17, 2) == ("5+7+0=12,9+1+1=11", "211")  # final carry


def test_first_pass_drops_carries_from_the_third_column():
    working, result = task.column_working(12345, 67890, 5, drop_carry_from=2)
    assert working == "5+0+0=05,4+9+0=13,3+8+0=11,2+7+0=09,1+6+0=07"
    assert result == "53197" != "53208"
    # no carry reaches column 2: the slip changes nothing
    assert task.column_working(111, 222, 3, drop_carry_from=2)[1] == "333"


def test_problems_answers_and_traces():
    cfg = task.TaskConfig()
    problems = task.make_problems(400, cfg, seed=3)
    assert [p["digits"] for p in problems[:4]] == [2, 3, 4, 5]
    rng = random.Random(0)
    wrong_without_check = {d: [] for d in range(2, 6)}
    for p in problems:
        assert p["answer"] == str(p["a"] + p["b"])[::-1] and p["answer"][0] != "0"
        columns = p["problem"].rstrip("=").split(",")
        assert len(columns) == p["digits"]
        trace = task.long_thought(p["a"], p["b"], p["digits"], cfg, rng)
        boxed = trace.rsplit("\\boxed{", 1)[1].rstrip("}")
        checks = trace.count("chk:")
        assert checks <= 2
        if checks:  # a check always ends on the right answer
            assert boxed == p["answer"]
        else:
            wrong_without_check[p["digits"]].append(boxed != p["answer"])
    assert not any(wrong_without_check[2])  # 2 digits: the slip never bites
    assert sum(wrong_without_check[5]) > sum(wrong_without_check[3]) > 0


def test_tokenizer_round_trip_and_template():
    tok = task.build_tokenizer()
    p = task.make_problems(1, task.TaskConfig(), seed=0)[0]
    trace = task.long_thought(p["a"], p["b"], p["digits"], task.TaskConfig(), random.Random(1))
    ids = tok.encode(p["problem"] + trace, add_special_tokens=False)
    assert tok.decode(ids) == p["problem"] + trace
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids).count("\\boxed{") == 1  # one token, not 7
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": p["problem"]}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == p["problem"]
