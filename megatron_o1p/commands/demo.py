"""`o1p demo`: the embedded end-to-end demo on a tiny long-thought model (CPU, minutes)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from megatron_o1p.demo.settings import DemoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    DemoConfig.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = DemoConfig.from_args(args)
    if cfg.conversion_only:
        return _conversion(cfg.workdir)
    if cfg.ablation:
        return _ablation(cfg)
    from megatron_o1p.demo.oracle import format_report, oracle_report
    from megatron_o1p.demo.pipeline import run_demo
    from megatron_o1p.demo.report import claims, format_claims

    start = time.perf_counter()
    result = run_demo(cfg.workdir, size=cfg.size, train_base=cfg.train_base)
    print("\nLength disharmony of the base model's samples (paper Table 1):")
    print(result["disharmony"].strip())
    print("\nGreedy evaluation on the held-out test set (paper Table 2; nK = K terms):")
    print(result["compare"].strip())
    print()
    pruner, task = result["pruner_runs"][-1], result["task"]
    eval_dir = result["eval_dir"]
    print(format_report(oracle_report(eval_dir / "baseline", eval_dir / pruner, task), pruner))
    print()
    print(format_claims(claims(result["eval_dir"], pruner, task)))
    seconds = time.perf_counter() - start
    print(f"\ndemo: all stages ran in {seconds:.0f} s; outputs in {cfg.workdir}")
    return 0


def _ablation(cfg) -> int:
    from megatron_o1p.demo.ablation import format_ablation, run_ablation

    start = time.perf_counter()
    rows = run_ablation(
        cfg.workdir, size=cfg.size, rounds=cfg.ablation_rounds, train_base=cfg.train_base
    )
    print("\nAblation on the demo task (greedy, held-out test set; same base model):")
    print(format_ablation(rows))
    print(f"\ndemo: ablation ran in {time.perf_counter() - start:.0f} s; outputs in {cfg.workdir}")
    return 0


def _conversion(workdir: Path) -> int:
    from megatron_o1p.demo.roundtrip import format_table, run_roundtrip_demo

    rows = run_roundtrip_demo(workdir / "conversion")
    print("\nHF <-> Megatron conversion (tiny models, fp32, CPU):")
    print(format_table(rows))
    ok = all(r["round trip bitwise"] for r in rows) and all(
        v < 1e-4 for r in rows for k, v in r.items() if k.startswith("max |logprob")
    )
    print("demo: PASS" if ok else "demo: FAIL")
    return 0 if ok else 1
