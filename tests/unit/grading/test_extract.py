"""extract.py: boxed answers (nested, \\fbox, first vs last, after </think>, unbalanced), GSM8K
`####` answers, and linear time on hostile inputs (5,000 nested braces, 1 MB strings).

`--extract first` is the official O1-Pruner extractor (`o1_scripts/utils.py`): every expected
value in `OFFICIAL_FIRST` was written by hand from reading that function, and is what it returns
(bar the three differences the extract.py docstring lists, marked here)."""

import time

import pytest

from megatron_o1p.grading.extract import (
    extract_answer,
    extract_boxed,
    extract_gsm8k,
    final_answer_region,
)


def test_final_answer_region():
    assert final_answer_region("a</think>b</think> c") == " c"
    assert final_answer_region("no think tags") == "no think tags"
    assert final_answer_region("<think>unfinished") == "<think>unfinished"


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\boxed{42}", "42"),
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{\sqrt{\frac{a}{b^{2}}}}", r"\sqrt{\frac{a}{b^{2}}}"),
        (r"\fbox{7}", "7"),
        (r"\boxed { 9 }", "9"),
        (r"\boxed 5$", "5"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces are literals
        (r"\boxed{\text{(A)}}", r"\text{(A)}"),
        (r"\boxedfoo{1}", None),  # another command, not a box
        (r"\boxed{}", None),
        (r"\boxed{  }", None),
        ("no box here", None),
        (r"\boxed{\frac{1}{2}", None),  # unbalanced (truncated)
        (r"\boxed", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_first_versus_last():
    text = r"first \boxed{1}, then \fbox{2}, finally \boxed{3}"
    assert extract_boxed(text, "last") == "3"
    assert extract_boxed(text, "first") == "1"
    assert extract_boxed(r"\boxed{\boxed{5}}", "first") == "5"  # the official pieces
    assert extract_boxed(r"\boxed{\boxed{5}}", "last") == "5"
    with pytest.raises(ValueError):
        extract_boxed(text, "middle")


OFFICIAL_FIRST = [
    # The whole response counts, `<think>` included.
    (r"<think>maybe \boxed{7}</think> final \boxed{9}", "7"),
    # An unbalanced box is skipped: the official code moves on to the next `boxed{`.
    (r"Start \boxed{\frac{1}{2} oops. Final \boxed{9}.", "9"),
    (r"\boxed{1", None),
    # An empty box is an (empty) answer, and later boxes are not read.
    (r"\boxed{}", ""),
    (r"\boxed{} then \boxed{3}", ""),
    (r"\boxed{  }", ""),  # the official '  ' stripped (difference 1)
    (r"\boxed{ 9 }", "9"),  # the official ' 9 ' stripped (difference 1)
    # Nested braces come back whole.
    (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt{2}}{2}"),
    (r"\boxed{\text{(A)}}", r"\text{(A)}"),
    ("\\boxed{1\n2}", "1\n2"),
    # A box inside a box: the outer piece ends at the inner `boxed{` unclosed, so the inner wins.
    (r"\boxed{\boxed{5}}", "5"),
    (r"\boxed{x\boxed{2}}", "2"),
    # Several boxes: the first closed one.
    (r"first \boxed{1}, then \boxed{2}", "1"),
    (r"\boxed{a}}", "a"),
    # Only the literal `boxed{` marks a box.
    (r"\boxed 5$", None),
    (r"\boxed {9}", None),
    (r"\fbox{7}", None),
    (r"\fbox{7} and \boxed{8}", "8"),
    (r"\boxedfoo{1}", None),
    ("boxed{3}", "3"),
    (r"\overboxed{3}", "3"),
    # Escaped braces count as braces.
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"\boxed{\left\{ x \right.} then \boxed{4}", "4"),
    (r"\boxed{\}} z", "\\"),
    # A box followed by `%`: the official code keeps the brace, `50}` (difference 3).
    (r"\boxed{50}% of them", "50"),
    (r"\boxed{50\%}", r"50\%"),
    # No box: the official string "None" (difference 2), and no `####` fallback.
    ("no box", None),
    ("#### 72", None),
]


@pytest.mark.parametrize("text, expected", OFFICIAL_FIRST)
def test_extract_first_is_the_official_extractor(text, expected):
    assert extract_answer(text, mode="first") == expected
    assert extract_boxed(text, "first") == expected


def test_last_mode_keeps_its_own_rules_on_the_official_cases():
    # The default mode reads after </think>, takes the last box, skips nothing, reads \fbox.
    assert extract_answer(r"<think>maybe \boxed{7}</think> final \boxed{9}") == "9"
    assert extract_answer(r"Start \boxed{\frac{1}{2} oops. Final \boxed{9}.") == "9"
    assert extract_answer(r"\boxed{1} then \boxed{\frac{1}{2}") is None
    assert extract_answer(r"\boxed{3} then \boxed{}") is None
    assert extract_answer(r"\boxed{\boxed{5}}") == "5"
    assert extract_answer(r"\fbox{7}") == "7"
    assert extract_answer("#### 72") == "72"


def test_unbalanced_last_box_does_not_fall_back():
    # A truncated final box is no answer, even if an earlier box was complete.
    assert extract_boxed(r"\boxed{1} and \boxed{2") is None
    assert extract_boxed(r"\boxed{1} and \boxed{2", "first") == "1"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She has 5 left.\n#### 5", "5"),
        ("#### 1,234", "1234"),
        ("#### -3.5.", "-3.5"),
        ("#### $18", "$18"),  # not a bare number: the rest of the line
        ("#### 1\nmore\n#### 2\n", "2"),
        ("####", None),
        ("no marker", None),
    ],
)
def test_extract_gsm8k(text, expected):
    assert extract_gsm8k(text) == expected


def test_extract_answer_prefers_boxed_and_reads_after_think():
    assert extract_answer("<think>\\boxed{1}</think>\n#### 2") == "2"
    assert extract_answer("<think>\\boxed{1}</think> so \\boxed{3}") == "3"
    assert extract_answer("\\boxed{4}\n#### 5") == "4"
    assert extract_answer("<think>\\boxed{1}</think> no answer") is None
    assert extract_answer("a \\boxed{1} b \\boxed{2}", mode="first") == "1"


def test_deep_nesting_and_megabyte_inputs_are_linear():
    deep = "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"
    digits = "9" * 1_000_000
    start = time.monotonic()
    assert extract_boxed(deep) == "{" * 5000 + "1" + "}" * 5000
    assert extract_boxed("\\boxed{" + "{" * 5000) is None
    assert extract_answer(f"\\boxed{{{digits}}}") == digits
    assert extract_answer(digits) is None
    assert extract_answer("#### " + digits) == digits
    assert extract_answer("\\boxed{" * 100_000) is None  # 700 KB of unclosed boxes
    assert extract_answer("####" + "," * 1_000_000) == "," * 1_000_000  # not a number: the line
    assert extract_answer("\\" * 1_000_000) is None
    assert extract_answer("\\boxed{" * 100_000, mode="first") is None
    assert extract_answer("boxed{" + "{" * 500_000 + "}" * 499_999, mode="first") is None
    assert extract_answer(digits + "\\boxed{1}", mode="first") == "1"
    # Quadratic work would take minutes on these; linear takes milliseconds.
    assert time.monotonic() - start < 10
