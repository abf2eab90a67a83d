"""The demo's verdict: the paper's claims, checked against the demo's own evaluation files.

Each claim is measured from `o1p evaluate` outputs and printed with its numbers, PASS or
MISS. A MISS is reported, never hidden: the README explains what the tiny setting can and
cannot show (see shared notes on the demo's honesty rules).

Tested by tests/unit/demo/test_pipeline.py and tests/e2e/test_demo.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from megatron_o1p.evaluation.compare import compare_table

BASELINES = ("baseline", "sft-shortest", "dpo")


def _pooled(summary: dict) -> tuple[float, int]:
    """(accuracy over every test problem, number of problems)."""
    n = sum(b["num_problems"] for b in summary["benchmarks"].values())
    correct = sum(b["accuracy"] * b["num_problems"] for b in summary["benchmarks"].values())
    return correct / n, n


def _summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def claims(eval_dir: Path, pruner: str = "o1-pruner") -> list[dict]:
    """[{claim, measured, ok}] for the demo's targets (the demo issue), for the O1-Pruner
    model evaluated in `eval_dir / pruner` (the last round's)."""
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

    acc_b, n = _pooled(_summary(eval_dir / "baseline"))
    acc_m, _ = _pooled(_summary(eval_dir / pruner))
    half = 1.96 * math.sqrt(max(acc_b * (1 - acc_b), 1e-12) / n)
    out.append(
        {
            "claim": "greedy accuracy >= baseline - 95% interval",
            "measured": f"{100 * acc_b:.1f}% +- {100 * half:.1f} -> {100 * acc_m:.1f}% "
            f"({n} test problems)",
            "ok": acc_m >= acc_b - half,
        }
    )

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


def format_claims(rows: list[dict]) -> str:
    lines = ["The paper's claims on the demo task:"]
    for r in rows:
        lines.append(f"  [{'PASS' if r['ok'] else 'MISS'}] {r['claim']}: {r['measured']}")
    return "\n".join(lines)
