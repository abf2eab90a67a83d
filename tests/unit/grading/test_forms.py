"""forms.py: the canonical form, the bare `pi` spelling and the base-subscript rule, as pure
string functions (their verdicts with the real math-verify are in test_equivalence.py)."""

import pytest

from megatron_o1p.grading.forms import latex_spelling, normalize_answer, string_verdict


def test_normalize_answer():
    assert normalize_answer(r" $\dfrac{1}{2}$ ") == r"\frac{1}{2}"
    assert normalize_answer(r"\left( 1, 2 \right)") == "(1,2)"
    assert normalize_answer(r"\[ 3\,000 \]") == "3000"
    assert normalize_answer("42.") == "42"
    assert normalize_answer("x = 2") == "x=2"
    assert normalize_answer("12 pi") == r"12\pi"
    assert normalize_answer("2516_{8}") == "2516_8"
    assert normalize_answer("a_{12}") == "a_{12}"  # a two-character subscript keeps its braces


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12 pi", r"12 \pi"),
        ("pi/2", r"\pi/2"),
        ("2pi r", r"2\pi r"),
        (r"\pi", r"\pi"),
        ("spin", "spin"),
        ("pix", "pix"),
        (r"\mathrm{api}", r"\mathrm{api}"),
        (r"\text{pi}", r"\text{\pi}"),
    ],
)
def test_latex_spelling_writes_a_bare_pi_as_pi(text, expected):
    assert latex_spelling(text) == expected


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        # fast path
        ("12 pi", r"12\pi", True),
        (r"\frac12", "0.5", None),  # not the same string: math-verify decides
        ("", "", None),
        # base subscripts: decided here, never by math-verify
        ("2516", "2516_8", False),
        ("10", "10_2", False),
        ("10_2", "10", False),
        ("2516_{8}", "2516_8", True),
        ("02516_8", "2516_8", True),  # leading zeros
        ("1358", "2516_8", False),  # no base conversion
        ("25168", "2516_8", False),  # the official grader's float('2516_8') == 25168
        ("2516_9", "2516_8", False),
        ("2519_8", "2519", False),  # an invalid digit still marks a based number
        ("4a_{16}", "4A_{16}", True),
        ("4G_{16}", "4G", None),  # G is no base-16 digit: a variable with an index
        ("AB_{16}", "AB", None),  # no digit 0-9: read as a variable
        ("(10_2, 11_2)", "(10_2,11_{2})", True),
        ("(10_2, 11_2)", "(2, 3)", False),
        ("1358_{10}", "1358", None),  # base ten: math-verify reads 1358
        ("x_1", "x_2", None),  # indexed variables are not numbers
        ("3x_2", "3x_{2}", True),  # equal strings
        ("3x_2", "x_2 3", None),
        ("a_{12}", "a_{13}", None),
    ],
)
def test_string_verdict(pred, gold, expected):
    assert string_verdict(pred, gold) is expected
