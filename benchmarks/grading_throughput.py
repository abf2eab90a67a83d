#!/usr/bin/env python
"""Grading throughput: answers/s of the project's grader on mixed answers, 2% of them hostile.

    python benchmarks/grading_throughput.py [--answers 2000 --hostile-frac 0.02 --workers 2]

Builds `--answers` synthetic responses with gold answers (seeded), and grades them the way
`o1p grade` does: `extract_answer` on each response, then `Grader.grade_batch` (math-verify in
spawned, guarded worker processes) in chunks of `--chunk-rows` (grade's default, 1024), with
`finish_reason == "length"` rows truncated. The mix (fractions of the non-hostile answers):

- same string as the gold (the parent's fast path), 35%;
- an equivalent but different form (`\\frac{1}{2}` vs `0.5`, `x = 7` vs `7`, ...), 25%;
- a wrong answer (math-verify says no), 30%;
- no final answer, 5%; cut off at the token limit, 5%;

plus the hostile ones, in turn: numeric power towers (`10^{10^{10^{10}}}`), 5,000 nested braces,
1 MB of digits, and `__import__('os').system(...)` strings (which would create a canary file
if anything executed them).

Reported: answers/s of the whole batch on a warm pool (the pool start is timed separately),
then each answer graded alone on a second fresh pool for its latency (max, p99, median) from
extraction to verdict, the wall-clock guard's kills (`timeouts`) and crashed workers, and the
number of answers whose verdict differs from its category's expected one. "Zero hangs" means
every answer came back within the guard (`HARD_TIMEOUT_FACTOR * timeout + grace`) and the
guard never fired.
Target: >= 200 answers/s on 2 cores.

Workers are spawned and re-import this module, hence the `__main__` guard.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _equivalent_pair(rng: random.Random) -> tuple[str, str]:
    """(predicted, gold) that differ as strings but are mathematically equal."""
    a, b = rng.randint(1, 99), rng.randint(2, 64)
    kind = rng.randrange(7)
    if kind == 0:
        d = rng.choice([2, 4, 5, 8, 10, 20, 25])
        return f"\\frac{{{a}}}{{{d}}}", f"{a / d:g}"
    if kind == 1:
        return f"x = {a}", f"{a}"
    if kind == 2:
        return f"{a}.0", f"{a}"
    if kind == 3:
        return f"\\sqrt{{{a * a * b}}}", f"{a}\\sqrt{{{b}}}"
    if kind == 4:
        return f"{a}+{b}", f"{a + b}"
    if kind == 5:
        return f"{2 * a}/{2 * b}", f"\\frac{{{a}}}{{{b}}}"
    return f"({-a}, {b}]", f"\\left( -{a}, {b} \\right]"


def _wrong_pair(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 999), rng.randint(1, 999)
    kind = rng.randrange(4)
    if kind == 0:
        return f"{a}", f"{a + b}"
    if kind == 1:
        return f"\\frac{{{a}}}{{{a + b}}}", f"\\frac{{{b}}}{{{a + b}}}"
    if kind == 2:
        return f"{a}\\sqrt{{2}}", f"{a}\\sqrt{{3}}"
    return f"x^2 + {a}x", f"x^2 + {a + b}x"


def _hostile(i: int, rng: random.Random, canary: Path) -> str:
    kind = i % 4
    if kind == 0:
        depth = rng.randint(3, 6)
        return "10" + "".join("^{10" for _ in range(depth)) + "}" * depth
    if kind == 1:
        return "{" * 5000 + "1" + "}" * 5000
    if kind == 2:
        return "".join(rng.choice("0123456789") for _ in range(1 << 20))
    return f"__import__('os').system('touch {canary}')"


def make_answers(n: int, hostile_frac: float, seed: int, canary: Path) -> list[dict]:
    """Rows with `response`, `answer`, `finish_reason`, `kind` and `expect` (the verdict)."""
    rng = random.Random(seed)
    n_hostile = round(n * hostile_frac)
    kinds = ["hostile"] * n_hostile
    weights = {"same": 35, "equivalent": 25, "wrong": 30, "none": 5, "truncated": 5}
    kinds += rng.choices(list(weights), list(weights.values()), k=n - n_hostile)
    rng.shuffle(kinds)
    rows, hostile_index = [], 0
    for kind in kinds:
        gold = str(rng.randint(0, 10**6))
        think = "<think>Let me check 2+2=4, so \\boxed{4} is not it.</think>" * rng.randint(0, 1)
        words = " ".join(rng.choices(["so", "the", "sum", "is", "then", "we", "get"], k=40))
        finish, pred, expect = "stop", None, False
        if kind == "same":
            pred, expect = gold, True
        elif kind == "equivalent":
            pred, gold = _equivalent_pair(rng)
            expect = True
        elif kind == "wrong":
            pred, gold = _wrong_pair(rng)
        elif kind == "truncated":
            pred, finish = gold, "length"
        elif kind == "hostile":
            pred = _hostile(hostile_index, rng, canary)
            hostile_index += 1
        box = "" if pred is None else f" The answer is $\\boxed{{{pred}}}$."
        rows.append(
            {
                "response": f"{think}{words}.{box}",
                "answer": gold,
                "finish_reason": finish,
                "kind": kind,
                "expect": expect,
            }
        )
    return rows


def _grade(grader, rows: list[dict]) -> list[bool]:
    from megatron_o1p.grading.extract import extract_answer

    extracted = [extract_answer(r["response"]) for r in rows]
    truncated = [r["finish_reason"] == "length" for r in rows]
    return grader.grade_batch(extracted, [r["answer"] for r in rows], truncated)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=2000)
    p.add_argument("--hostile-frac", type=float, default=0.02)
    p.add_argument("--workers", type=int, default=2, help="math-verify worker processes (2)")
    p.add_argument("--timeout", type=int, default=5, help="math-verify seconds per step (5)")
    p.add_argument("--chunk-rows", type=int, default=1024, help="rows per grade_batch (1024)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from megatron_o1p.grading.equivalence import Grader, normalize_answer, unsafe_reason
    from megatron_o1p.grading.extract import extract_answer

    with tempfile.TemporaryDirectory(prefix="grading_bench_") as work:
        canary = Path(work) / "executed"
        rows = make_answers(args.answers, args.hostile_frac, args.seed, canary)
        # What reaches math-verify: extracted, not truncated, not string-equal, not unsafe.
        to_verify = set()
        for r in rows:
            pred = extract_answer(r["response"])
            if pred is None or r["finish_reason"] == "length":
                continue
            if normalize_answer(pred) != normalize_answer(r["answer"]):
                if unsafe_reason(pred) is None and unsafe_reason(r["answer"]) is None:
                    to_verify.add((pred, r["answer"]))

        # Two fresh pools, so that the latency pass gets no help from the batch pass.
        with Grader(args.workers, args.timeout) as grader:
            start = time.perf_counter()
            grader.grade_batch(["\\frac{1}{2}"], ["0.5"])  # starts the pool (spawn + imports)
            startup = time.perf_counter() - start

            start = time.perf_counter()
            verdicts = []
            for i in range(0, len(rows), args.chunk_rows):
                verdicts += _grade(grader, rows[i : i + args.chunk_rows])
            batch_s = time.perf_counter() - start
            guard_s = grader.hard_timeout_s
            timeouts, crashes = grader.timeouts, grader.crashes

        with Grader(args.workers, args.timeout) as grader:
            grader.grade_batch(["\\frac{1}{2}"], ["0.5"])
            latencies = []
            for r in rows:
                start = time.perf_counter()
                _grade(grader, [r])
                latencies.append(time.perf_counter() - start)
            timeouts, crashes = timeouts + grader.timeouts, crashes + grader.crashes
        executed = canary.exists()

    counts = {k: sum(r["kind"] == k for r in rows) for k in dict.fromkeys(r["kind"] for r in rows)}
    wrong = {}
    for r, ok in zip(rows, verdicts):
        if ok != r["expect"]:
            wrong[r["kind"]] = wrong.get(r["kind"], 0) + 1
    slowest = max(range(len(rows)), key=latencies.__getitem__)
    hostile_max = max((t for r, t in zip(rows, latencies) if r["kind"] == "hostile"), default=0)
    over_guard = sum(t >= guard_s for t in latencies)
    ordered = sorted(latencies)
    print(
        f"{len(rows)} answers ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
        f"{len(to_verify)} distinct pairs reach math-verify; {args.workers} workers, "
        f"timeout {args.timeout} s, guard {guard_s:.0f} s, {os.cpu_count()} CPUs"
    )
    print()
    print("measure                               | value")
    print("--------------------------------------|----------")
    print(f"pool start (spawn + imports)          | {startup:.2f} s")
    print(f"batch of {len(rows)} (chunks of {args.chunk_rows})        | {batch_s:.2f} s")
    print(f"answers/s (batch, warm pool)          | {len(rows) / batch_s:.0f}")
    print(f"answers/s incl. pool start            | {len(rows) / (batch_s + startup):.0f}")
    print(f"latency alone: median / p99           | {statistics.median(latencies) * 1e3:.1f} / "
          f"{ordered[int(0.99 * (len(ordered) - 1))] * 1e3:.1f} ms")  # fmt: skip
    print(f"latency alone: max (kind)             | {latencies[slowest] * 1e3:.1f} ms "
          f"({rows[slowest]['kind']})")  # fmt: skip
    print(f"latency alone: max over hostile       | {hostile_max * 1e3:.1f} ms")
    print(f"answers over the guard / guard kills  | {over_guard} / {timeouts}")
    print(f"worker crashes                        | {crashes}")
    print(f"verdicts unlike expected              | {sum(wrong.values())} {wrong or ''}".rstrip())
    print(f"hostile string executed (canary file) | {executed}")
    hangs = over_guard + timeouts
    print()
    print(
        f"grading: {len(rows) / batch_s:.0f} answers/s (target >= 200), max latency "
        f"{max(latencies) * 1e3:.0f} ms, hangs {hangs}"
    )
    return 1 if hangs or executed else 0


if __name__ == "__main__":
    sys.exit(main())
