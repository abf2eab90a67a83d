"""RefLogprobsConfig: everything `o1p ref-logprobs` is told, composed of the component configs.

    model      config/model.py      --load, --spec, --bf16, --seq-length
    parallel   config/parallel.py   TP and PP (forward-only: no virtual pipeline, no SP)

plus the stage's own fields below, and `--logprob-impl`, LossConfig's flag (the same kernel as
training). Kept apart from `training/ref_logprobs.py` so that `o1p ref-logprobs --help` imports
no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.config.choices import LOGPROB_IMPLS
from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.config.loss import LossConfig
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.config.parallel import ParallelConfig

UNUSED_FLAGS = (
    "recompute_activations",
    "num_layers_per_virtual_pipeline_stage",
    "sequence_parallel",
)
"""Flags of the composed configs this stage does not take (pass as `add_arguments(skip=...)`)."""


@dataclass
class RefLogprobsConfig(Flags):
    data: Path = shared(
        "data", "dataset parquet from `o1p build-dataset` (its SFT and DPO files too)"
    )
    model: ModelConfig
    """The reference model: the initial checkpoint; --seq-length as for `o1p train`."""
    out: Path | None = shared(
        "out",
        "where to write the dataset with its reference log-probs; default: --data, "
        "rewritten in place (atomically)",
        default=None,
    )
    rollouts: Path | None = shared(
        "rollouts",
        "sampled shards: report the step-0 rollout/train log-prob mismatch",
        default=None,
    )
    mismatch_threshold: float = flag(
        0.1, "a sequence counts as mismatched above this mean |ref - sampler| log-prob"
    )
    micro_batch_size: int = shared(
        "micro_batch_size",
        "dataset rows (DPO: pairs) per forward on each data-parallel rank",
        default=4,
    )
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    logprob_impl: str = LossConfig.logprob_impl
    """`--logprob-impl`: LossConfig's flag, which the command adds and passes in."""

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.out = None if self.out is None else Path(self.out)
        self.rollouts = None if self.rollouts is None else Path(self.rollouts)
        require(
            self.micro_batch_size >= 1,
            f"--micro-batch-size must be >= 1, got {self.micro_batch_size}",
        )
        require(
            self.mismatch_threshold >= 0,
            f"--mismatch-threshold must be >= 0, got {self.mismatch_threshold}",
        )
        require(
            self.logprob_impl in LOGPROB_IMPLS,
            f"--logprob-impl {self.logprob_impl!r}: choose one of {LOGPROB_IMPLS}",
        )
        require(
            self.parallel.num_layers_per_virtual_pipeline_stage is None
            and self.parallel.virtual_pipeline_model_parallel_size is None,
            "ref-logprobs runs one micro-batch at a time: drop the virtual pipeline stages",
        )

    @property
    def destination(self) -> Path:
        """The parquet file written: --out, or --data itself."""
        return self.out if self.out is not None else self.data
