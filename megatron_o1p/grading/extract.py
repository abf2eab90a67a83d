"""Final-answer extraction from a model response: `\\boxed{...}` / `\\fbox{...}`, then `#### x`.

Only the final answer region is searched: the text after the last `</think>` when the response
has one (R1-style models), else the whole response. Inside it, `extract_answer` takes a boxed
answer and falls back to GSM8K's `#### 42` line.

Differs from the official O1-Pruner code on purpose: it takes the FIRST `\\boxed{}` of the whole
response; we default to the LAST one in the final answer region, because long-thought models
box intermediate results while reasoning and box the answer at the end. `mode="first"` gives
the official behaviour for parity runs.

Every function is linear in the length of the text: one regex scan with no nested quantifiers
and one brace-matching loop with a depth counter (no recursion), so a 1 MB response or 5,000
nested braces costs milliseconds. Pure: standard library only.
"""

from __future__ import annotations

import re

THINK_END = "</think>"

# `\boxed` or `\fbox` not followed by a letter (so `\boxedfoo` is not a box).
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# Boxed content may be written without braces: `\boxed 5` (Hendrycks' MATH normaliser accepts it).
_BARE_RE = re.compile(r"[ \t]+([^\s${}]+)")
# A GSM8K answer number: sign, digits with thousands commas, optional decimals. Starts with a
# digit and has no overlapping quantifiers, so a failed match cannot backtrack quadratically.
_GSM8K_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_answer_region(text: str) -> str:
    """The text after the last `</think>`, or the whole text when there is none.

    Args:
        text: a model response.

    Returns:
        The part of the response that holds the final answer.
    """
    cut = text.rfind(THINK_END)
    return text if cut < 0 else text[cut + len(THINK_END) :]


def _braced_content(text: str, start: int) -> str | None:
    """The content of the brace group opening at text[start] == "{", or None if unbalanced.

    `\\{` and `\\}` are escaped literals and do not count; `\\\\{` is a line break, then a
    real brace.
    """
    depth = 0
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2  # skip the escaped character, whatever it is
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def _box_content(text: str, end: int) -> str | None:
    """The argument of a box command that ends at text[end]: `{...}` or a bare token."""
    i = end
    while i < len(text) and text[i] in " \t\n":
        i += 1
    if i < len(text) and text[i] == "{":
        content = _braced_content(text, i)
    else:
        bare = _BARE_RE.match(text, end)
        content = bare.group(1) if bare else None
    if content is None or not content.strip():
        return None
    return content.strip()


def extract_boxed(text: str, mode: str = "last") -> str | None:
    """The content of the last (or first) `\\boxed{...}` or `\\fbox{...}` in `text`.

    Braces are matched with a depth counter, so nested groups (`\\boxed{\\frac{1}{2}}`) come back
    whole. Only the chosen box is read: if it is unbalanced (a truncated response) or empty the
    result is None, without falling back to another box.

    Args:
        text: the text to search (usually `final_answer_region(response)`).
        mode: "last" (default) or "first" (the official O1-Pruner code).

    Returns:
        The stripped content, or None when there is no box or it is unbalanced or empty.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in ("last", "first"):
        raise ValueError(f"mode must be 'last' or 'first', got {mode!r}")
    if mode == "first":
        match = _BOX_RE.search(text)
    else:
        match = None
        for match in _BOX_RE.finditer(text):  # noqa: B007 - we want the last match
            pass
    if match is None:
        return None
    return _box_content(text, match.end())


def extract_gsm8k(text: str) -> str | None:
    """The answer after the last `####` (GSM8K's format), with thousands commas removed.

    Follows the GSM8K reference answer parser (openai/grade-school-math `extract_answer`): the
    number after `#### `, commas stripped. A non-numeric answer comes back as the stripped rest
    of the line.

    Args:
        text: the text to search.

    Returns:
        The answer string, or None when there is no `####` or nothing follows it.
    """
    cut = text.rfind("####")
    if cut < 0:
        return None
    line = text[cut + 4 :].split("\n", 1)[0].strip()
    number = _GSM8K_NUMBER_RE.match(line)
    if number:
        value = number.group(0).replace(",", "")
        return value or None
    line = line.rstrip(".").strip()
    return line or None


def extract_answer(text: str, mode: str = "last") -> str | None:
    """The final answer of a response: a boxed answer in the final region, else `#### x`.

    Args:
        text: a model response.
        mode: which box to take, "last" (default) or "first" (official O1-Pruner code).

    Returns:
        The extracted answer, or None when the response has none.
    """
    region = final_answer_region(text)
    boxed = extract_boxed(region, mode)
    if boxed is not None:
        return boxed
    return extract_gsm8k(region)
