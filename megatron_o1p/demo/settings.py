"""What the demo runs with: its sizes (`--size full|ci`), the recipe of its runs, its flags.

The stage markers of `demo/pipeline.py` record `asdict` of `DemoSize` and `DemoRecipe`: a
changed value reruns the stages that depend on it, so a renamed field reruns them all.

Tested by tests/unit/commands/test_demo.py (the flags) and tests/e2e/test_demo.py (the `ci` size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.config.flags import Flags, flag, require
from megatron_o1p.demo import task as demo_task


@dataclass(frozen=True)
class DemoSize:
    """Everything that scales the demo's cost. `full` is the README's demo; `ci` only checks
    that every stage runs and writes its files."""

    sft_traces: int = 40000
    base_iters: int = 800
    train_problems: int = 384
    num_samples: int = 8
    test_per_level: int = 250
    sampled_eval: bool = True
    task: demo_task.TaskConfig = field(default_factory=demo_task.TaskConfig)
    global_batch: int = 48


SIZES = {
    "full": DemoSize(),
    # 2-3 terms, so that a base model trained for seconds already solves some of its samples
    # (the SFT and DPO baselines need correct samples to exist).
    "ci": DemoSize(
        sft_traces=2560,
        base_iters=80,
        train_problems=48,
        num_samples=4,
        test_per_level=8,
        sampled_eval=False,
        task=demo_task.TaskConfig(min_terms=2, max_terms=3, careless_from_term=2),
        global_batch=32,
    ),
}


@dataclass(frozen=True)
class DemoRecipe:
    """Hyper-parameters of the demo's runs (the model and task are tiny; see the README)."""

    layers: int = 4
    hidden: int = 128
    seq_length: int = 256
    base_lr: float = 3e-3
    sample_temperature: float = 1.0
    lam: float = 2.0
    o1p_lr: float = 5e-5
    o1p_epochs: int = 2
    o1p_ratio: str = "token"
    """`o1p train --ratio` of the pruning runs (the ablation tries `sequence`)."""
    o1p_epsilon_high: float | None = None
    """`o1p train --epsilon-high` of the pruning runs; None = symmetric clip."""
    sft_lr: float = 1e-4
    dpo_lr: float = 5e-5
    baseline_epochs: int = 2
    rounds: int = 2
    """O1-Pruner rounds: each re-samples from the last pruned model, which becomes the new
    reference (one round moves each token's probability by at most the clip range)."""
    micro_batch: int = 16
    seed: int = 0


@dataclass(frozen=True)
class DemoConfig(Flags):
    """The `o1p demo` flags."""

    workdir: Path = flag(
        Path("runs/demo"), "where every stage writes its output; a rerun skips completed stages"
    )
    size: str = flag(
        "full",
        "full: the README's demo (about 15 min on 2 cores); ci: a reduced smoke run",
        choices=tuple(SIZES),
    )
    conversion_only: bool = flag(
        False, "only the HF <-> Megatron round trip on tiny Qwen2 and Llama (about a minute)"
    )
    train_base: bool = flag(
        False,
        "train the base model (about 400 s) even where the shipped one was trained with the "
        "same settings (megatron_o1p/demo/base_model/)",
    )
    ablation: bool = flag(
        False,
        "run the ablation instead: --ratio token/sequence x symmetric/clip-higher clip, "
        "greedy results after each round (reuses the workdir's base model)",
    )
    ablation_rounds: int = flag(3, "O1-Pruner rounds per ablation variant")

    def __post_init__(self):
        require(self.size in SIZES, f"--size {self.size!r}: choose one of {', '.join(SIZES)}")
        require(
            self.ablation_rounds >= 1, f"--ablation-rounds must be >= 1, got {self.ablation_rounds}"
        )
        require(
            not (self.ablation and self.conversion_only),
            "--ablation and --conversion-only are separate demos: pass one",
        )
