"""Is an extracted answer equivalent to the gold answer? math-verify 0.9.0 in a guarded pool.

Model output is hostile input: an answer can ask sympy for 10^(10^(10^10)), nest braces
thousands deep, or be a megabyte of digits. Three layers keep grading bounded:

1. Cheap checks in the parent, before any parsing (`grading/forms.py`). Normalised string
   equality (fast path); a pair with a base subscript (`2516_8`) is decided by its canonical
   strings, because math-verify drops numeric subscripts. Answers over `MAX_ANSWER_CHARS`,
   nested deeper than `MAX_NESTING_DEPTH`, with unbalanced braces, with a numeric power tower
   (`10^{10^{10}}`), an exponent of more than `MAX_EXPONENT_DIGITS` digits, or a factorial of a
   huge number are compared by that string equality only: math-verify never sees them.
2. math-verify's own per-step timeouts (`signal.alarm`, whole seconds) inside worker processes.
   signal.alarm works only in a process's main thread, hence processes rather than threads;
   it also cancels any alarm the caller set, so we set none. A float timeout makes
   math-verify silently return [], hence the integer.
3. A wall-clock guard in the parent: an answer whose worker has not answered within
   `HARD_TIMEOUT_FACTOR * timeout_s + HARD_TIMEOUT_GRACE_S` seconds (C-level big-integer work
   ignores signals) is graded incorrect, the pool's workers are killed and a fresh pool takes
   the remaining answers. Workers run under an address-space limit, so a huge allocation fails
   with MemoryError (graded incorrect) instead of swapping the machine.

Nothing here calls eval, sympify or parse_expr. Answers are handed to math-verify wrapped as
`\\boxed{...}` (a bare `pi` spelled `\\pi`) with only `LatexExtractionConfig`: latex2sympy
builds expressions from an ANTLR parse tree, and math-verify's plain-expression path (which
calls sympy's `parse_expr`, i.e. `eval`) is never enabled.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import importlib.util
import logging
import multiprocessing
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool

from megatron_o1p.errors import SetupError
from megatron_o1p.grading.forms import latex_spelling, string_verdict

# Longer answers are compared as strings only: real final answers are short, and parse time
# grows with length (a 1 MB digit string would occupy a worker for its whole timeout).
MAX_ANSWER_CHARS = 1000
# Deeper brace/bracket nesting is compared as a string only: latex2sympy's ANTLR parser and
# sympy recurse per level (5,000 nested braces overflow the recursion limit).
MAX_NESTING_DEPTH = 50
# An exponent (or factorial operand) with more digits than this is compared as a string only:
# sympy evaluates integer powers exactly, and 10^(10^7) already has ten million digits.
MAX_EXPONENT_DIGITS = 6
# math-verify bounds each parse and each comparison by timeout_s: two parses plus a comparison.
HARD_TIMEOUT_FACTOR = 3
# Start-up and IPC slack on top of that, in seconds.
HARD_TIMEOUT_GRACE_S = 2.0
# Per-worker address-space limit (RLIMIT_AS), in MiB: a worker with sympy loaded maps under
# 0.1 GiB; 4 GiB leaves room for legitimate answers and stops runaway big integers.
DEFAULT_MEMORY_LIMIT_MB = 4096
# Seconds a new worker may take to import sympy, latex2sympy and math-verify.
_START_TIMEOUT_S = 300
# A worker crash (killed for memory, segfault) blames every answer in flight; suspects are
# retried one at a time, and an answer that crashes a worker on its own is incorrect.
_MAX_CRASHES = 2

_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_LETTER_RE = re.compile(r"[A-Za-z]")


# --------------------------------------------------------------------------- parent-side checks


def _has_free_letters(text: str) -> bool:
    """True when the text has a letter outside a LaTeX command name (a variable such as x)."""
    return bool(_LETTER_RE.search(_COMMAND_RE.sub("", text)))


def _group_after(text: str, i: int) -> tuple[str, int]:
    """The operand starting at text[i] and the index after it: a brace group's content, a
    signed digit run, or one character."""
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return "", n
    if text[i] == "{":
        depth = 0
        for j in range(i, n):
            depth += (text[j] == "{") - (text[j] == "}")
            if depth == 0:
                return text[i + 1 : j], j + 1
        return text[i + 1 :], n
    j = i
    while j < n and (text[j].isdigit() or text[j] in "+-"):
        j += 1
    return (text[i:j], j) if j > i else (text[i], i + 1)


def _operand_before(text: str, i: int) -> str:
    """The operand ending just before text[i] (for `!`): a bracketed group or a digit run."""
    j = i - 1
    if j >= 0 and text[j] in ")}":
        depth = 0
        for k in range(j, -1, -1):
            depth += (text[k] in ")}") - (text[k] in "({")
            if depth == 0:
                return text[k + 1 : j]
        return text[:j]
    k = j
    while k >= 0 and text[k].isdigit():
        k -= 1
    return text[k + 1 : i]


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def unsafe_reason(text: str) -> str | None:
    """Why an answer must not reach math-verify, or None when it may.

    Checks, in order: length, nesting depth and brace balance, numeric power towers and
    exponents with many digits (`^` and `**`), factorials of large or numeric-power operands.
    A power tower with a variable (`e^{x^2}`) is allowed: sympy keeps it symbolic.

    Args:
        text: an answer string (prediction or gold).

    Returns:
        A short reason, or None.
    """
    if len(text) > MAX_ANSWER_CHARS:
        return f"longer than {MAX_ANSWER_CHARS} characters"
    depth = max_depth = braces = 0
    escaped = False
    for ch in text:
        if ch in "{([":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch in "})]":
            depth -= 1
        # Only unescaped braces group (`\{` is a literal), and they must balance because the
        # answer is parsed inside `\boxed{...}`.
        if not escaped and ch == "{":
            braces += 1
        elif not escaped and ch == "}":
            braces -= 1
            if braces < 0:
                return "unbalanced braces"
        escaped = ch == "\\" and not escaped
    if max_depth > MAX_NESTING_DEPTH:
        return f"nested deeper than {MAX_NESTING_DEPTH}"
    if braces != 0:
        return "unbalanced braces"
    # Both operators are short and the text is <= MAX_ANSWER_CHARS: quadratic at worst is fine.
    for match in re.finditer(r"\^|\*\*", text):
        exponent, end = _group_after(text, match.end())
        # a^{b^c} or a^b^c (unbraced, as in Python's right-associative 10**10**10)
        tower = "^" in exponent or "**" in exponent or text[end:].lstrip().startswith(("^", "**"))
        if tower and not _has_free_letters(exponent):
            return "numeric power tower"
        if _digits(exponent) > MAX_EXPONENT_DIGITS:
            return f"exponent with more than {MAX_EXPONENT_DIGITS} digits"
    for match in re.finditer(r"!", text):
        operand = _operand_before(text, match.start())
        if _digits(operand) > MAX_EXPONENT_DIGITS - 2 and not _has_free_letters(operand):
            return "factorial of a large number"
        if "^" in operand and not _has_free_letters(operand):
            return "factorial of a power"
    return None


# --------------------------------------------------------------------------- worker side


def _init_worker(memory_limit_mb: int) -> None:
    """Pool initializer: memory limit, no SIGINT (the parent handles Ctrl-C), quiet logs."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_mb > 0:
        try:
            import resource

            limit = memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):  # not POSIX, or a lower hard limit
            pass
    # math-verify logs every timeout as a warning; the parent reports counts instead.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401  - pay the sympy/ANTLR import once, before any deadline


def _ready() -> bool:
    return True


def verify_with_math_verify(pred: str, gold: str, timeout_s: int) -> bool:
    """math-verify's verdict on one pair; runs inside a worker process.

    Both strings are wrapped as `\\boxed{...}` and parsed with `LatexExtractionConfig` only
    (no `parse_expr`). `verify(gold, pred)` is asymmetric: gold comes first.

    Args:
        pred: extracted answer (already checked by `unsafe_reason`).
        gold: reference answer (likewise).
        timeout_s: whole seconds per parse and per comparison.

    Returns:
        True when math-verify finds them equivalent; False on no parse, mismatch or timeout.
    """
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    gold_parsed = parse(f"\\boxed{{{gold}}}", extraction_config=config, parsing_timeout=timeout_s)
    if not gold_parsed:
        return False
    pred_parsed = parse(f"\\boxed{{{pred}}}", extraction_config=config, parsing_timeout=timeout_s)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout_s))


# --------------------------------------------------------------------------- the pool


class Grader:
    """Grades batches of (prediction, gold) pairs with math-verify in a guarded process pool.

    Use as a context manager; the pool starts on the first pair that needs math-verify and
    its workers are shut down on exit.

    Attributes:
        timeouts: answers graded incorrect because the wall-clock guard fired.
        crashes: answers graded incorrect because they crashed a worker on their own.
    """

    def __init__(
        self,
        workers: int = 1,
        timeout_s: int = 5,
        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
        verify_fn: Callable[[str, str, int], bool] = verify_with_math_verify,
    ):
        """Configure the pool (nothing starts yet).

        Args:
            workers: worker processes (>= 1).
            timeout_s: whole seconds per math-verify step (>= 1); the wall-clock guard is
                `HARD_TIMEOUT_FACTOR * timeout_s + HARD_TIMEOUT_GRACE_S` per answer.
            memory_limit_mb: address-space limit per worker in MiB (0 = none).
            verify_fn: module-level function (pred, gold, timeout_s) -> bool run in the
                workers; tests substitute a misbehaving one.

        Raises:
            ValueError: for a non-integer or non-positive timeout, or workers < 1.
        """
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
            raise ValueError(
                f"timeout_s must be a whole number of seconds >= 1, got {timeout_s!r} "
                "(math-verify's signal.alarm takes integers; a float silently disables it)"
            )
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.timeout_s = timeout_s
        self.hard_timeout_s = HARD_TIMEOUT_FACTOR * timeout_s + HARD_TIMEOUT_GRACE_S
        self.memory_limit_mb = memory_limit_mb
        self.verify_fn = verify_fn
        self.timeouts = 0
        self.crashes = 0
        self._pool: cf.ProcessPoolExecutor | None = None

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the workers down (a later batch starts a new pool)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def grade_batch(
        self,
        preds: Sequence[str | None],
        golds: Sequence[str | None],
        truncated: Sequence[bool] | None = None,
    ) -> list[bool]:
        """Grade a batch: True where the prediction is equivalent to the gold answer.

        Truncated outputs (finish_reason "length") and missing predictions are always
        incorrect; then the string rules of `grading/forms.py` (fast path, base subscripts),
        then math-verify. Identical (pred, gold) pairs are verified once.

        Args:
            preds: [N] extracted answers, None where extraction failed.
            golds: [N] reference answers.
            truncated: [N] True for outputs cut off at the token limit; None = none were.

        Returns:
            [N] correctness.
        """
        if len(preds) != len(golds) or (truncated is not None and len(truncated) != len(preds)):
            raise ValueError("preds, golds and truncated must have the same length")
        results = [False] * len(preds)
        jobs: dict[tuple[str, str], list[int]] = {}
        for i, (pred, gold) in enumerate(zip(preds, golds)):
            if (truncated is not None and truncated[i]) or pred is None or gold is None:
                continue
            verdict = string_verdict(pred, gold)  # the fast path, base subscripts
            if verdict is not None:
                results[i] = verdict
                continue
            pred, gold = latex_spelling(pred), latex_spelling(gold)
            if unsafe_reason(pred) is None and unsafe_reason(gold) is None:
                jobs.setdefault((pred, gold), []).append(i)
        for rows, ok in zip(jobs.values(), self._verify_pairs(list(jobs))):
            for i in rows:
                results[i] = ok
        return results

    # ----------------------------------------------------------------------- pool internals

    def _start_pool(self) -> cf.ProcessPoolExecutor:
        if importlib.util.find_spec("math_verify") is None:
            raise SetupError(
                "grading needs math-verify, which is not installed; "
                "run `pip install math-verify==0.9.0`"
            )
        # spawn, not fork: the parent may hold threads (tqdm, pyarrow) that fork would copy
        # mid-lock; spawn costs one sympy import per worker, paid here, before any deadline.
        pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.memory_limit_mb,),
        )
        try:
            for future in [pool.submit(_ready) for _ in range(self.workers)]:
                future.result(timeout=_START_TIMEOUT_S)
        except (BrokenProcessPool, cf.TimeoutError) as err:
            pool.shutdown(wait=False, cancel_futures=True)
            raise SetupError(
                "math-verify worker processes failed to start (see the traceback above); "
                "a script that grades must guard its top level with "
                '`if __name__ == "__main__":`, because workers are spawned and re-import it'
            ) from err
        return pool

    def _submit(self, pair: tuple[str, str]) -> cf.Future:
        if self._pool is not None:
            try:
                return self._pool.submit(self.verify_fn, *pair, self.timeout_s)
            except BrokenProcessPool:  # a worker died between batches
                self._kill_pool()
        self._pool = self._start_pool()
        return self._pool.submit(self.verify_fn, *pair, self.timeout_s)

    def _kill_pool(self) -> None:
        """Kill every worker (a hung one ignores everything but SIGKILL) and drop the pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # NOTE: ProcessPoolExecutor has no public way to kill its workers before Python 3.14
        # (`kill_workers`); `_processes` is the pid -> Process map it keeps in 3.11-3.13.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=10)

    def _verify_pairs(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """Run verify_fn over pairs with at most `workers` in flight, each under a deadline."""
        results = [False] * len(pairs)
        pending = collections.deque(range(len(pairs)))
        crashes = collections.Counter()
        inflight: dict[cf.Future, tuple[int, float]] = {}
        while pending or inflight:
            # A crash suspect runs alone, so a second crash convicts it and nobody else.
            while pending and len(inflight) < self.workers:
                i = pending[0]
                solo = any(crashes[j] for j, _ in inflight.values())
                if solo or (crashes[i] and inflight):
                    break
                pending.popleft()
                future = self._submit(pairs[i])  # may start the pool: before the clock starts
                inflight[future] = (i, time.monotonic() + self.hard_timeout_s)
            next_deadline = min(deadline for _, deadline in inflight.values())
            done, _ = cf.wait(
                inflight,
                timeout=max(0.0, next_deadline - time.monotonic()),
                return_when=cf.FIRST_COMPLETED,
            )
            broken = False
            for future in done:
                i, _ = inflight.pop(future)
                try:
                    results[i] = bool(future.result())
                except BrokenProcessPool:
                    broken = True
                    self._blame(i, crashes, pending)
                except Exception:  # the answer broke verify_fn itself: not equivalent
                    results[i] = False
            now = time.monotonic()
            expired = [f for f, (_, deadline) in inflight.items() if deadline <= now]
            for future in expired:
                inflight.pop(future)
                self.timeouts += 1
            if broken or expired:
                # The pool is gone (or about to be): everything still in flight starts again.
                for i, _ in inflight.values():
                    if broken:
                        self._blame(i, crashes, pending)
                    else:
                        pending.appendleft(i)
                inflight.clear()
                self._kill_pool()
        return results

    def _blame(self, i: int, crashes: collections.Counter, pending: collections.deque) -> None:
        crashes[i] += 1
        if crashes[i] < _MAX_CRASHES:
            pending.appendleft(i)
        else:
            self.crashes += 1


# --------------------------------------------------------------------------- one-off use

_SHARED: dict[int, Grader] = {}


def _close_shared() -> None:
    for grader in _SHARED.values():
        grader.close()
    _SHARED.clear()


atexit.register(_close_shared)


def is_equivalent(pred: str | None, gold: str | None, timeout_s: int = 5) -> bool:
    """Whether one extracted answer is equivalent to the gold answer.

    Uses a one-worker `Grader` shared by all calls with the same timeout (started on first
    use, shut down at interpreter exit). For many answers, use `Grader.grade_batch`.

    Args:
        pred: extracted answer (None = extraction failed: incorrect).
        gold: reference answer.
        timeout_s: whole seconds per math-verify step.

    Returns:
        True when equivalent.
    """
    if timeout_s not in _SHARED:
        _SHARED[timeout_s] = Grader(workers=1, timeout_s=timeout_s)
    return _SHARED[timeout_s].grade_batch([pred], [gold])[0]
