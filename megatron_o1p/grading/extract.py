"""Final-answer extraction from a model response: `\\boxed{...}` / `\\fbox{...}`, then `#### x`.

Two modes (`o1p grade --extract`, `o1p evaluate --extract`):

- `last` (default): only the final answer region is searched, the text after the last
  `</think>` when the response has one (R1-style models), else the whole response. Inside it,
  the LAST `\\boxed{}` or `\\fbox{}` is the answer (long-thought models box intermediate results
  while reasoning and the answer at the end), with GSM8K's `#### 42` line as a fallback.
- `first`: the official O1-Pruner rule (`o1_scripts/utils.py` `extract_answer`), for parity
  runs. It cuts the WHOLE response (`<think>` included) at every `boxed{` and returns the
  first piece whose braces close before the next `boxed{`. Hence, as in the official code:
  an unbalanced box is skipped for the next one; an empty `\\boxed{}` gives ''; a box nested
  in a box gives the inner one's content (`\\boxed{\\boxed{5}}` -> `5`); `\\fbox{}`,
  `\\boxed 5` and `\\boxed {5}` are not boxes, while any `...boxed{` is (`\\overboxed{3}`);
  `\\{` and `\\}` count as braces; there is no `####` fallback. Three deliberate differences:
  the content is stripped of surrounding whitespace (both graders strip it first, so no
  verdict changes); no box gives None, not the string "None" (incorrect either way, unless a
  gold answer were the word None); and a box followed by `%` (`\\boxed{50}%`) gives `50` where
  the official code keeps the closing brace (`50}`): its grader deletes leftover braces before
  comparing, so it judges `50}` as `50`, but for math-verify the stray brace makes the answer
  unbalanced, hence never equal to anything.

Every function is linear in the length of the text: regex scans with no nested quantifiers and
brace-matching loops with a depth counter (no recursion; in `first` mode each character is
scanned once, because a piece ends at the next `boxed{`), so a 1 MB response or 5,000 nested
braces costs milliseconds. Pure: standard library only.
"""

from __future__ import annotations

import re

THINK_END = "</think>"

# `\boxed` or `\fbox` not followed by a letter (so `\boxedfoo` is not a box).
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# Boxed content may be written without braces: `\boxed 5` (Hendrycks' MATH normaliser accepts it).
_BARE_RE = re.compile(r"[ \t]+([^\s${}]+)")
# The official code's box marker (`output.split('boxed{')`), and the braces it counts.
_OFFICIAL_BOX = "boxed{"
_BRACE_RE = re.compile(r"[{}]")
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
    """The content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, or the official first box.

    "last": braces are matched with a depth counter, so nested groups
    (`\\boxed{\\frac{1}{2}}`) come back whole and escaped `\\{`, `\\}` are literals. Only the
    last box is read: if it is unbalanced (a truncated response) or empty the result is None,
    without falling back to another box. "first": `first_box_official(text)`.

    Args:
        text: the text to search (usually `final_answer_region(response)` for "last").
        mode: "last" (default) or "first" (the official O1-Pruner rule).

    Returns:
        The stripped content, or None when there is no box (or, "last", it is unbalanced or
        empty).

    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in ("last", "first"):
        raise ValueError(f"mode must be 'last' or 'first', got {mode!r}")
    if mode == "first":
        return first_box_official(text)
    match = None
    for match in _BOX_RE.finditer(text):  # noqa: B007 - we want the last match
        pass
    if match is None:
        return None
    return _box_content(text, match.end())


def first_box_official(text: str) -> str | None:
    """The official O1-Pruner extractor: the first `boxed{` piece whose braces close.

    The text is cut at every `boxed{` (the last piece runs to the end); in each piece, in
    order, braces are counted from 0 (`\\{` and `\\}` included) and the piece's answer is its
    text before the first `}` that takes the count below 0. A piece that never closes is
    skipped. Each character is scanned once.

    Args:
        text: a whole model response (`<think>` included, as in the official code).

    Returns:
        The first answer, stripped ('' for an empty box), or None when no piece closes.
    """
    start = text.find(_OFFICIAL_BOX)
    while start >= 0:
        begin = start + len(_OFFICIAL_BOX)
        start = text.find(_OFFICIAL_BOX, begin)  # the next piece, and where this one ends
        end = len(text) if start < 0 else start
        depth = 0
        for brace in _BRACE_RE.finditer(text, begin, end):
            depth += 1 if brace.group() == "{" else -1
            if depth < 0:
                return text[begin : brace.start()].strip()
    return None


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
    """The final answer of a response.

    "last": the last box in the final answer region, else its `#### x` line. "first": the
    official O1-Pruner rule over the whole response (`first_box_official`; no `####` fallback).

    Args:
        text: a model response.
        mode: "last" (default) or "first" (official O1-Pruner code).

    Returns:
        The extracted answer, or None when the response has none.
    """
    if mode == "first":
        return first_box_official(text)
    region = final_answer_region(text)
    boxed = extract_boxed(region, mode)
    if boxed is not None:
        return boxed
    return extract_gsm8k(region)
