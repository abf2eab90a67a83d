"""equivalence.py with the real math-verify: equivalent forms, wrong answers, hostile answers.

The sandbox contract: a hostile answer (a power tower sympy would try to evaluate, 5,000 nested
braces, a megabyte of digits, Python code) is graded incorrect within the timeout and runs
nothing. The wall-clock guard, the crash handling and the memory limit are exercised with a
fake verify function run in the same spawned workers: it hangs, exits or allocates on cue,
which no real answer does reliably.
"""

import os
import time

import pytest

from megatron_o1p.grading.equivalence import Grader, is_equivalent, unsafe_reason
from megatron_o1p.grading.extract import extract_answer

PWNED = "/tmp/PWNED_o1p"
HOSTILE = {
    "power tower": r"10^{10^{10^{10}}}",
    "5,000 nested braces": "{" * 5000 + "1" + "}" * 5000,
    "1 MB of digits": "7" * 1_000_000,
    "python code": "__import__('os').system('touch /tmp/PWNED_o1p')",
}


def _fake_verify(pred: str, gold: str, timeout_s: int) -> bool:
    """Runs in a worker: misbehaves on cue, else compares case-insensitively."""
    if pred == "hang":
        time.sleep(3600)  # like C-level big-integer work: no signal interrupts it
    if pred == "crash":
        os._exit(3)
    if pred == "oom":
        return len(bytearray(8 << 30)) > 0
    return pred.lower() == gold.lower()


# ----------------------------------------------------------------------------- parent checks


@pytest.mark.parametrize(
    "answer, reason",
    [
        (r"10^{10^{10^{10}}}", "tower"),
        (r"2^{3^2}", "tower"),
        ("10**10**10", "tower"),
        ("10^10^10", "tower"),
        (r"10^{1000000}", "digits"),
        (r"x^{10000000}", "digits"),
        (r"(10^{10})!", "factorial"),
        ("100000!", "factorial"),
        ("{" * 51 + "}" * 51, "nested"),
        ("1" * 1001, "longer"),
        (r"\frac{1}{2", "unbalanced"),
        ("}{", "unbalanced"),
    ],
)
def test_unsafe_answers_never_reach_math_verify(answer, reason):
    assert reason in (unsafe_reason(answer) or "")


@pytest.mark.parametrize(
    "answer",
    [
        r"e^{x^2}",
        r"2^{100000}",
        "n!",
        "120",
        r"\frac{1}{2}",
        "[1, 2)",
        r"\{1, 2\}",
        r"\left\{x\right.",
    ],
)
def test_ordinary_answers_pass_the_checks(answer):
    assert unsafe_reason(answer) is None


# ----------------------------------------------------------------------------- real math-verify


@pytest.mark.parametrize(
    "pred, gold",
    [("1/2", "0.5"), (r"\frac{1}{2}", "0.5"), ("3", "3.0"), ("x=2", "2"), (r"\dfrac12", "0.5")],
)
def test_equivalent_forms(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(
    "pred, gold",
    [("12 pi", r"12\pi"), ("12pi", r"12\pi"), (r"2\pi r", "2 pi r"), ("6 pi", r"\frac{12\pi}{2}")],
)
def test_a_bare_pi_is_pi(pred, gold):
    # math-verify alone reads `pi` as p*i
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("2516", "2516_8", False),  # math-verify alone drops the subscript: True
        ("10", "10_2", False),
        ("10_2", "10", False),
        ("2516_{8}", "2516_8", True),
        ("2516_8", r"$2516_{8}$", True),
        ("1358", "2516_8", False),  # 2516 in base 8, but no conversion (forms.py)
        ("2516_9", "2516_8", False),
        ("4a_{16}", "4A_{16}", True),
        ("1358_{10}", "1358", True),  # base ten is the ordinary reading: math-verify decides
    ],
)
def test_base_subscripts_are_part_of_the_number(pred, gold, expected):
    assert is_equivalent(pred, gold) is expected


@pytest.mark.parametrize(
    "pred, gold", [("5", "6"), ("1/3", "0.5"), ("x=3", "2"), (r"\pi", "3"), ("", "1")]
)
def test_wrong_answers(pred, gold):
    assert not is_equivalent(pred, gold)


def test_hostile_answers_are_incorrect_within_the_timeout():
    if os.path.exists(PWNED):
        os.remove(PWNED)
    timeout_s = 5
    for name, answer in HOSTILE.items():
        response = f"The answer is \\boxed{{{answer}}}"
        for pred in (answer, extract_answer(response)):
            start = time.monotonic()
            assert not is_equivalent(pred, "5", timeout_s=timeout_s), name
            assert time.monotonic() - start < timeout_s, name
        assert not is_equivalent("5", answer, timeout_s=timeout_s), f"{name} as gold"
    assert not os.path.exists(PWNED)


def test_grade_batch_truncated_missing_and_dedup():
    preds = ["1/2", "1/2", None, "2", "1/2"]
    golds = ["0.5", "0.5", "1", "2", "0.5"]
    truncated = [False, False, False, True, False]
    with Grader(workers=1, timeout_s=5) as grader:
        assert grader.grade_batch(preds, golds, truncated) == [True, True, False, False, True]
        assert grader.grade_batch([], []) == []
        with pytest.raises(ValueError):
            grader.grade_batch(["1"], [])


def test_timeout_must_be_whole_seconds():
    with pytest.raises(ValueError, match="whole number"):
        Grader(timeout_s=2.5)
    with pytest.raises(ValueError, match="whole number"):
        Grader(timeout_s=0)


# ----------------------------------------------------------------------------- the sandbox


def test_wall_clock_guard_kills_a_hung_worker_and_recovers():
    with Grader(workers=2, timeout_s=1, verify_fn=_fake_verify) as grader:
        start = time.monotonic()
        out = grader.grade_batch(["hang", "A", "B", "c"], ["x", "a", "b", "d"])
        elapsed = time.monotonic() - start
        assert out == [False, True, True, False]
        assert grader.timeouts == 1
        # One guard period (3 * 1 + 2 s) plus a pool restart, not the hour the worker asked for.
        assert elapsed < 60
        assert grader.grade_batch(["E"], ["e"]) == [True]


def test_a_crashing_answer_is_isolated_and_incorrect():
    with Grader(workers=2, timeout_s=5, verify_fn=_fake_verify) as grader:
        assert grader.grade_batch(["crash", "A", "B"], ["x", "a", "z"]) == [False, True, False]
        assert grader.crashes == 1


def test_memory_limit_turns_a_huge_allocation_into_incorrect():
    with Grader(workers=1, timeout_s=5, memory_limit_mb=2048, verify_fn=_fake_verify) as grader:
        assert grader.grade_batch(["oom", "A"], ["x", "a"]) == [False, True]
        assert grader.crashes == 0
