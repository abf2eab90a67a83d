"""The demo's ablation: which form of the clipped ratio prunes, and how many rounds it takes.

    o1p demo --ablation [--workdir runs/demo] [--ablation-rounds 3]

Every variant starts from the demo's own base model (trained or reused from the workdir) and
runs its O1-Pruner rounds through the same stages as the demo (`pipeline.prune_round`); its
first round trains on the demo's own first-round data (`<workdir>/round1`, the same samples of
the same base model: a variant changes training only), later rounds sample their own; after
each round its pruned model is evaluated greedy on the demo's test set. A variant is a change
of the pruning runs' `--ratio` (token / sequence) and clip (symmetric / clip-higher) only, so
the rows differ by what they name. Each row: greedy accuracy, length, the share of the
avoidable tokens removed (against the task's oracle, `demo/oracle.py`) and AES (stated
formula, against the base model).

Variants write under `<workdir>/ablation/<variant>/`; a rerun skips what is complete.

Tested by tests/unit/demo/test_ablation.py (the table) and tests/e2e/test_demo.py (`--size ci`).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from megatron_o1p.demo.oracle import oracle_report
from megatron_o1p.demo.pipeline import (
    DemoContext,
    collect_round,
    evaluate_model,
    prepare_base,
    prune_round,
)
from megatron_o1p.demo.runner import Runner, Stages
from megatron_o1p.demo.settings import SIZES, DemoRecipe
from megatron_o1p.evaluation.compare import compare_table

CLIP_HIGHER = 0.28
"""--epsilon-high of the clip-higher variants (DAPO's value; --epsilon stays 0.2)."""

VARIANTS = {
    "token-symmetric": {"o1p_ratio": "token", "o1p_epsilon_high": None},
    "token-clip-higher": {"o1p_ratio": "token", "o1p_epsilon_high": CLIP_HIGHER},
    "sequence-symmetric": {"o1p_ratio": "sequence", "o1p_epsilon_high": None},
    "sequence-clip-higher": {"o1p_ratio": "sequence", "o1p_epsilon_high": CLIP_HIGHER},
}
"""name -> DemoRecipe fields it changes."""


def run_ablation(
    workdir: Path,
    size: str = "full",
    rounds: int = 3,
    variants=None,
    log=print,
    train_base: bool = False,
) -> list[dict]:
    """Run every variant for `rounds` rounds; returns one table row per (variant, round)."""
    demo_size = SIZES[size]
    variants = VARIANTS if variants is None else variants
    for name, changes in variants.items():
        require_training_only(name, changes)
    workdir.mkdir(parents=True, exist_ok=True)
    # the task, the base model, its evaluation, and round 1's five data stages
    runner, stages = Runner(workdir, log), Stages(workdir, log, total=8)
    root = DemoContext(workdir, demo_size, DemoRecipe(), runner, stages, train_base=train_base)
    prepare_base(root)
    baseline = workdir / "ablation" / "baseline"
    root.stage(
        "ablation: evaluate the base model",
        functools.partial(evaluate_model, root, root.base.hf, baseline),
        settings=root.base_settings,
        outputs=[baseline],
    )
    first_round = collect_round(root, 1, root.base)
    rows = []
    for name, changes in variants.items():
        recipe = dataclasses.replace(root.recipe, rounds=rounds, **changes)
        ctx = _variant_context(root, name, recipe)
        reference = ctx.base
        for number in range(1, rounds + 1):
            # round 1 trains on the demo's own first-round data (the base model's samples)
            data = first_round if number == 1 else None
            reference = prune_round(ctx, number, reference, data=data)
            pruned = ctx.pruner_names[number - 1]
            evaluate = functools.partial(
                evaluate_model, ctx, ctx.runs_dir / pruned / "hf", ctx.eval_dir / pruned
            )
            ctx.stage(f"evaluate round {number}", evaluate, outputs=[ctx.eval_dir / pruned])
            rows.append(ablation_row(baseline, ctx.eval_dir / pruned, demo_size.task, name, number))
    return rows


TRAINING_FIELDS = ("o1p_ratio", "o1p_epsilon_high", "o1p_lr", "o1p_epochs")
"""The DemoRecipe fields a variant may change: round 1's data is shared, so it must not
depend on them."""


def require_training_only(name: str, changes: dict) -> None:
    """A one-line error for a variant that changes how round 1's data is made."""
    others = sorted(set(changes) - set(TRAINING_FIELDS))
    if others:
        raise ValueError(
            f"ablation variant {name!r} changes {others}: a variant may change only "
            f"{', '.join(TRAINING_FIELDS)} (its first round trains on the demo's data)"
        )


def _variant_context(root: DemoContext, name: str, recipe: DemoRecipe) -> DemoContext:
    folder = root.workdir / "ablation" / name
    folder.mkdir(parents=True, exist_ok=True)
    log = root.runner.log
    # round 1: train, evaluate (its data is the demo's); later rounds: convert the reference,
    # sample, grade, build-dataset, ref-logprobs, train, evaluate
    stages = Stages(folder, log, total=2 + 7 * (recipe.rounds - 1))
    return DemoContext(folder, root.size, recipe, Runner(folder, log), stages, shared=root.workdir)


def ablation_row(baseline: Path, model: Path, task, variant: str, rounds: int) -> dict:
    """One row of the ablation table, from two `o1p evaluate` output folders."""
    total = oracle_report(baseline, model, task)[-1]
    aes = compare_table(baseline, [model], ["baseline", variant])[1]["average"]["aes"]
    return {
        "variant": variant,
        "rounds": rounds,
        "accuracy": total.model_correct / total.items,
        "length": total.model_length,
        "removed": total.removed,
        "aes": aes,
        "baseline_accuracy": total.baseline_correct / total.items,
        "baseline_length": total.baseline_length,
        "oracle_length": total.oracle_length,
    }


def format_ablation(rows: list[dict]) -> str:
    """The ablation as a markdown table (the README's), baseline and oracle first."""
    first = rows[0]
    lines = [
        "| ratio, clip | rounds | greedy Acc | Len | avoidable removed | AES |",
        "|---|---:|---:|---:|---:|---:|",
        f"| baseline (base model) | - | {100 * first['baseline_accuracy']:.1f} | "
        f"{first['baseline_length']:.1f} | 0% | 0.00 |",
        f"| oracle (check only where needed) | - | 100.0 | {first['oracle_length']:.1f} | "
        "100% | - |",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['rounds']} | {100 * r['accuracy']:.1f} | {r['length']:.1f} | "
            f"{100 * r['removed']:.0f}% | {r['aes']:.2f} |"
        )
    return "\n".join(lines)
