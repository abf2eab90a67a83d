"""String-level answer forms, decided before math-verify: canonical spelling and base subscripts.

`normalize_answer` is the conservative canonical form behind the grader's fast path and
`o1p evaluate`'s majority vote: two answers equal after it are equal. `string_verdict` is the
fast path plus the pairs math-verify gets wrong by construction; `latex_spelling` is what
math-verify is handed for the rest.

Two forms math-verify 0.9.0 misreads:

- **A bare `pi`** (`12 pi`): latex2sympy reads it as the product p*i, so `12 pi` != `12\\pi`.
  A `pi` that is a word of its own (no letter or backslash before it, no letter after it) is
  rewritten as `\\pi` on both sides, in the canonical form and in what math-verify parses.
  The official grader (Hendrycks/PRM800K) accepts `12 pi` too.
- **A base subscript** (`2516_8`, `10_{2}`): math-verify drops a numeric subscript, so
  `2516` == `2516_8` and `10` == `10_2`, which is wrong: the digits mean another number. When
  either answer holds a number with a base subscript, the pair is decided by the canonical
  string alone, never by math-verify: `2516_8` == `2516_{8}` (the braces are LaTeX grouping),
  leading zeros and the case of letter digits do not count (`0A3_{16}` == `a3_{16}`), and
  `2516` != `2516_8`. No base conversion is attempted: `1358` != `2516_8` although
  2516 in base 8 is 1358, because a problem that gives its answer in base 8 asks for base 8
  ("Express your answer in base 8"), and converting would accept an answer the problem rules
  out. Base 10 is the ordinary reading (`1358_{10}` is left to math-verify, which reads 1358).
  A based number is one or more digits 0-9 with a base 2-9 or 11-36; for bases above 10,
  letters may be digits too, if the number has a digit 0-9 and every digit is below the base.
  So `x_1`, `a_{12}` and `3x_2` stay variables with indices. The official grader differs
  here: its normaliser turns `2516_8` into 25168 (Python's `float` reads the underscore as a
  digit separator), so it accepts `25168` for `2516_8` and rejects `2516_{8}`.

Pure: standard library only; nothing here parses an expression, let alone evaluates one.
"""

from __future__ import annotations

import re

_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SPACING_RE = re.compile(r"\\(?:left|right)(?![A-Za-z])|\\[!,;: ]|\s+")
_FRAC_RE = re.compile(r"\\[dt]frac(?![A-Za-z])")
# `pi` as a word of its own: not `\pi`, `spin`, `pix` or `\mathrm{api}`.
_BARE_PI_RE = re.compile(r"(?<![A-Za-z\\])pi(?![A-Za-z])")
# A one-character subscript needs no braces in LaTeX: `x_{1}` is `x_1`.
_ONE_CHAR_SUBSCRIPT_RE = re.compile(r"_\{([0-9A-Za-z])\}")
# Digits (letters too, for bases above 10), `_` and a base, braced or not. The lookbehind makes
# the digits a whole token (`x12_3` is not `12_3`); no nested quantifiers, so no backtracking
# blow-up.
_BASED_RE = re.compile(r"(?<![0-9A-Za-z\\])([0-9A-Za-z]+)_(?:\{(\d+)\}|(\d+))")


def latex_spelling(text: str) -> str:
    """`text` with each bare word `pi` written `\\pi` (what math-verify is handed).

    Args:
        text: an answer string.

    Returns:
        The answer in the spelling latex2sympy reads as intended.
    """
    return _BARE_PI_RE.sub(r"\\pi", text)


def normalize_answer(text: str) -> str:
    """A conservative canonical form for the string fast path and majority voting.

    Strips surrounding math delimiters, whitespace, `\\left`/`\\right` and spacing commands, maps
    `\\dfrac`/`\\tfrac` to `\\frac`, a bare `pi` to `\\pi` and `_{c}` (one character) to `_c`,
    and drops a trailing period. Two answers equal after this are equal; unequal ones go to
    `string_verdict`, then math-verify.

    Args:
        text: an answer string.

    Returns:
        The normalised string.
    """
    s = latex_spelling(text.strip())
    for left, right in _DELIMITERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : len(s) - len(right)]
            break
    s = _FRAC_RE.sub(r"\\frac", _SPACING_RE.sub("", s))
    s = _ONE_CHAR_SUBSCRIPT_RE.sub(r"_\1", s)
    return s.rstrip(".")


def _based_number(digits: str, base_text: str) -> str | None:
    """`digits` in base `base_text`, canonical (`A3_16`), or None when it is not a number."""
    base = int(base_text) if len(base_text) <= 2 else 0
    if not 2 <= base <= 36 or base == 10:
        return None
    if not digits.isdigit() and (base < 10 or not any(ch.isdigit() for ch in digits)):
        return None  # x_1, 3x_2, a_{12}: an indexed variable
    if base > 10 and any(int(ch, 36) >= base for ch in digits):
        return None
    return f"{digits.upper().lstrip('0') or '0'}_{base}"


def _canonical_based(normalized: str) -> tuple[str, bool]:
    """(the normalised answer with every based number canonical, whether it had one)."""
    found = False

    def canonical(match: re.Match) -> str:
        nonlocal found
        number = _based_number(match.group(1), match.group(2) or match.group(3))
        found = found or number is not None
        return number or match.group(0)

    return _BASED_RE.sub(canonical, normalized), found


def string_verdict(pred: str, gold: str) -> bool | None:
    """The verdict of the string rules on a pair, or None to let math-verify decide.

    Equal (non-empty) `normalize_answer` forms are equal: the fast path. When either answer
    holds a number with a base subscript, the answers are equal exactly when their canonical
    forms are, and math-verify never sees them (see the module docstring).

    Args:
        pred: extracted answer.
        gold: reference answer.

    Returns:
        True or False when a string rule decides, else None.
    """
    pred_norm, gold_norm = normalize_answer(pred), normalize_answer(gold)
    if pred_norm and pred_norm == gold_norm:
        return True
    pred_form, pred_based = _canonical_based(pred_norm)
    gold_form, gold_based = _canonical_based(gold_norm)
    if pred_based or gold_based:
        return pred_form == gold_form
    return None
