"""The demo's synthetic task: the workings add up, the first pass slips exactly where the
task says, checks fix it, and the tokenizer round-trips every response."""

import random

from megatron_o1p.demo import task


def test_working_is_a_running_total():
    assert task.working([3, 5, 9, 2, 7]) == ("a3,b+5=8,c+9=17,d+2=19,e+7=26", 26)


def test_first_pass_forgets_carries_from_the_fourth_term():
    steps, total = task.working([3, 5, 9, 2, 7], careless_from=3)
    assert steps == "a3,b+5=8,c+9=17,d+2=19,e+7=16" and total == 16  # e wrapped 19 -> 26
    assert task.working([3, 5, 9, 2, 7], careless_from=2)[1] == 6  # c and e both wrapped
    assert task.working([1, 1, 1, 1], careless_from=1)[1] == 4  # no carry, no slip


def test_problems_answers_and_traces():
    cfg = task.TaskConfig()
    problems = task.make_problems(500, cfg, seed=3)
    assert [p["difficulty"] for p in problems[:5]] == ["n2", "n3", "n4", "n5", "n6"]
    rng = random.Random(0)
    wrong_without_check = {f"n{k}": [] for k in range(2, 7)}
    for p in problems:
        assert p["answer"] == str(sum(p["terms"]))
        assert p["problem"].count(",") == len(p["terms"]) - 1
        trace = task.long_thought(p["terms"], cfg, rng)
        boxed = trace.rsplit("\\boxed{", 1)[1].rstrip("}")
        checks = trace.count("chk:")
        assert checks <= 2
        if checks:  # a check always ends on the right answer
            assert boxed == p["answer"]
        else:
            wrong_without_check[p["difficulty"]].append(boxed != p["answer"])
    assert not any(wrong_without_check["n2"] + wrong_without_check["n3"])  # slip never bites
    assert sum(wrong_without_check["n6"]) > sum(wrong_without_check["n4"]) > 0


def test_tokenizer_round_trip_and_template():
    tok = task.build_tokenizer()
    p = task.make_problems(5, task.TaskConfig(), seed=0)[-1]
    trace = task.long_thought(p["terms"], task.TaskConfig(), random.Random(1))
    ids = tok.encode(p["problem"] + trace, add_special_tokens=False)
    assert tok.decode(ids) == p["problem"] + trace
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids).count("\\boxed{") == 1  # one token, not 7
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": p["problem"]}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == p["problem"]


def test_oracle_checks_only_where_the_first_pass_slips():
    from megatron_o1p.demo.task import TaskConfig, oracle_length, oracle_response, parse_problem

    cfg = TaskConfig()
    assert parse_problem("a3,b5,c9,d2,e7=") == [3, 5, 9, 2, 7]
    assert oracle_response([7, 7], cfg) == "a7,b+7=14=14;\\boxed{14}"
    assert oracle_response([3, 5, 9, 2, 7], cfg) == (
        "a3,b+5=8,c+9=17,d+2=19,e+7=16=16;chk:a3,b+5=8,c+9=17,d+2=19,e+7=26=26 fix;\\boxed{26}"
    )
    # 13 characters, `\boxed{`, "14}", then the end-of-sequence token
    assert oracle_length("a7,b7=", cfg) == 13 + 1 + 3 + 1


def test_token_count_matches_the_task_tokenizer():
    from megatron_o1p.demo.task import build_tokenizer, token_count

    tok = build_tokenizer()
    for text in ("a7,b+7=14=14;\\boxed{14}", "a3,b+5=8=8;chk:a3,b+5=8=8 ok;\\boxed{8}"):
        assert token_count(text) == len(tok.encode(text, add_special_tokens=False))


def test_parse_problem_refuses_other_text():
    import pytest

    from megatron_o1p.demo.task import parse_problem

    for text in ("a3,b5", "x3,b5=", "a33,b5="):
        with pytest.raises(ValueError, match="not a demo problem"):
            parse_problem(text)


def test_check_shares_by_level_and_number_of_checks():
    cfg = task.TaskConfig()
    terms = [3, 5, 9, 2, 7]  # the first pass slips at the fifth term
    first_pass = task.oracle_response(terms, cfg).split("chk:")[0] + "\\boxed{16}"
    samples = [
        ("n5", first_pass, False),
        ("n5", task.oracle_response(terms, cfg), True),
        ("n5", task.oracle_response(terms, cfg), True),
        ("n5", "x", False),
        ("n2", "a1,b+2=3;\\boxed{3}", True),
    ]
    shares = task.check_shares(samples)
    assert shares == {"n2": {0: (1.0, 1.0)}, "n5": {0: (0.5, 0.0), 1: (0.5, 1.0)}}
    assert task.format_check_shares(shares).splitlines() == [
        "n2  0 checks 100% (acc 100%)",
        "n5  0 checks  50% (acc   0%)  1 check  50% (acc 100%)",
    ]
