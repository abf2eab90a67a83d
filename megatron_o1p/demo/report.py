"""The demo's verdict: the paper's claims, checked against the demo's own evaluation files.

Each claim is measured from `o1p evaluate` outputs and printed with its numbers, PASS or
MISS. A MISS is reported, never hidden: the README explains what the tiny setting can and
cannot show (see shared notes on the demo's honesty rules).

Tested by tests/unit/demo/test_pipeline.py and tests/e2e/test_demo.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from megatron_o1p.demo.oracle import oracle_report
from megatron_o1p.demo.task import TaskConfig
from megatron_o1p.evaluation.compare import compare_table
from megatron_o1p.evaluation.stats import wilson_interval

BASELINES = ("baseline", "sft-shortest", "dpo")
AVOIDABLE_TARGET = 0.80
"""Share of the avoidable tokens (baseline -> oracle) O1-Pruner should remove, greedy."""


def _pooled(summary: dict) -> tuple[float, int]:
    """(accuracy over every test problem, number of problems)."""
    n = sum(b["num_problems"] for b in summary["benchmarks"].values())
    correct = sum(b["accuracy"] * b["num_problems"] for b in summary["benchmarks"].values())
    return correct / n, n


def _summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def claims(eval_dir: Path, pruner: str = "o1-pruner", task: TaskConfig | None = None) -> list[dict]:
    """[{claim, measured, ok}] for the demo's targets (the demo issue), for the O1-Pruner
    model evaluated in `eval_dir / pruner` (the last round's). With the `task` the test items
    came from, the length and accuracy claims are measured against its oracle
    (`demo/oracle.py`)."""
    methods = [*BASELINES, pruner]
    rows = compare_table(eval_dir / "baseline", [eval_dir / m for m in methods[1:]], methods)
    by = {r["method"]: r for r in rows}
    base, o1p = by["baseline"], by[pruner]
    out = []

    cut = 1 - o1p["average"]["length"] / base["average"]["length"]
    out.append(
        {
            "claim": "greedy length down >= 40%",
            "measured": f"{base['average']['length']:.1f} -> {o1p['average']['length']:.1f} "
            f"tokens ({-100 * cut:+.0f}%)",
            "ok": cut >= 0.40,
        }
    )

    if task is not None:
        out += _oracle_claims(eval_dir, pruner, task)
    else:
        out.append(_accuracy_claim(eval_dir, pruner))

    if (eval_dir / f"{pruner}-T1").is_dir() and (eval_dir / "baseline-T1").is_dir():
        len_b = _summary(eval_dir / "baseline-T1")["average"]["mean_length"]
        len_m = _summary(eval_dir / f"{pruner}-T1")["average"]["mean_length"]
        acc_bt, _ = _pooled(_summary(eval_dir / "baseline-T1"))
        acc_mt, _ = _pooled(_summary(eval_dir / f"{pruner}-T1"))
        out.append(
            {
                "claim": "sampled (T=1) length also down",
                "measured": f"{len_b:.1f} -> {len_m:.1f} tokens, accuracy "
                f"{100 * acc_bt:.1f}% -> {100 * acc_mt:.1f}%",
                "ok": len_m < len_b,
            }
        )

    benches = list(o1p["benchmarks"])
    cuts = [o1p["benchmarks"][b]["d_length"] for b in benches]
    out.append(
        {
            "claim": "cut most on the easiest items, least on the hardest",
            "measured": ", ".join(f"{b} {-100 * c:+.0f}%" for b, c in zip(benches, cuts)),
            "ok": cuts[0] > cuts[-1],
        }
    )

    aes = {m: by[m]["average"]["aes"] for m in methods[1:]}
    out.append(
        {
            "claim": "O1-Pruner's AES above SFT's and DPO's",
            "measured": ", ".join(f"{m} {v:.2f}" for m, v in aes.items()),
            "ok": aes[pruner] > max(aes["sft-shortest"], aes["dpo"]),
        }
    )
    return out


def _accuracy_claim(eval_dir: Path, pruner: str) -> dict:
    """Pooled greedy accuracy inside the baseline's Wilson 95% interval (no oracle needed)."""
    acc_b, n = _pooled(_summary(eval_dir / "baseline"))
    acc_m, _ = _pooled(_summary(eval_dir / pruner))
    low, high = wilson_interval(round(acc_b * n), n)
    return {
        "claim": "greedy accuracy inside the baseline's 95% interval (or above it)",
        "measured": f"{100 * acc_b:.1f}% [{100 * low:.1f}, {100 * high:.1f}] -> "
        f"{100 * acc_m:.1f}% ({n} test problems)",
        "ok": acc_m >= low,
    }


def _oracle_claims(eval_dir: Path, pruner: str, task: TaskConfig) -> list[dict]:
    *levels, total = oracle_report(eval_dir / "baseline", eval_dir / pruner, task)
    acc_b, low, high = total.accuracy(total.baseline_correct)
    acc_m = total.model_correct / total.items
    return [
        {
            "claim": f"greedy: >= {100 * AVOIDABLE_TARGET:.0f}% of the avoidable tokens removed",
            "measured": f"{total.baseline_length:.1f} -> {total.model_length:.1f} tokens, "
            f"oracle {total.oracle_length:.1f}: {100 * total.removed:.0f}% removed",
            "ok": total.removed >= AVOIDABLE_TARGET,
            "why": _short_levels(levels),
        },
        {
            "claim": "greedy accuracy inside the baseline's 95% interval (or above it)",
            "measured": f"{100 * acc_b:.1f}% [{100 * low:.1f}, {100 * high:.1f}] -> "
            f"{100 * acc_m:.1f}% ({total.items} test items, paired McNemar p = "
            f"{total.p_value:.2g})",
            "ok": acc_m >= low,
            "why": _accuracy_drops(levels),
        },
    ]


def _short_levels(levels) -> str:
    """Where a MISS of the avoidable-token claim comes from: the levels short of the target."""
    short = [r for r in levels if r.removed < AVOIDABLE_TARGET]
    cells = [f"{r.level} {100 * r.removed:.0f}% ({r.model_length:.1f} tokens)" for r in short]
    return "removed per level: " + ", ".join(cells) if cells else ""


def _accuracy_drops(levels, alpha: float = 0.05) -> str:
    """Where a MISS of the accuracy claim comes from: levels whose accuracy fell (McNemar)."""
    cells = [
        f"{r.level} {100 * r.baseline_correct / r.items:.1f}% -> "
        f"{100 * r.model_correct / r.items:.1f}% (p = {r.p_value:.2g})"
        for r in levels
        if r.model_correct < r.baseline_correct and r.p_value < alpha
    ]
    return "accuracy fell on " + ", ".join(cells) if cells else ""


def format_claims(rows: list[dict]) -> str:
    lines = ["The paper's claims on the demo task:"]
    for r in rows:
        lines.append(f"  [{'PASS' if r['ok'] else 'MISS'}] {r['claim']}: {r['measured']}")
        if not r["ok"] and r.get("why"):
            lines.append(f"         {r['why']}")
    return "\n".join(lines)
