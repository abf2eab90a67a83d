"""VerifyConfig: everything `o1p convert verify` is told, composed of the component configs.

    model      config/model.py      --spec, --bf16, --seq-length (64 here); --load is --mcore-dir
    parallel   config/parallel.py   TP, PP, virtual pipeline, sequence parallel

plus the check's own fields below. Kept apart from `checkpoint/verify.py` so that `o1p convert
--help` imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.config.parallel import ParallelConfig

DEFAULT_TOLERANCE = {"float32": 1e-4, "bfloat16": 1.5e-1}
"""Max |diff| of logits and log-probs when --tolerance is not given, per dtype."""

UNUSED_FLAGS = ("load", "recompute_activations", "pack_sequences")
"""ModelConfig flags verify does not take: the checkpoint is --mcore-dir; no backward; its
test batch is padded rows."""


@dataclass
class VerifyConfig(Flags):
    hf_dir: Path = shared("hf_dir", "HF model folder the checkpoint was converted from")
    mcore_dir: Path = shared("mcore_dir", "megatron checkpoint to check against it")
    model: ModelConfig
    """How to build the megatron side; `model.load` is --mcore-dir."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    micro_batch_size: int = shared(
        "micro_batch_size", "rows of the test batch (the sample text, then random ids)", default=2
    )
    seed: int = shared("seed", "seed of the random ids and of megatron's RNGs", default=1234)
    tolerance: float | None = flag(
        None, "max |diff| of logits and log-probs allowed; default 1e-4 in fp32, 0.15 in bf16"
    )
    """Resolved from DEFAULT_TOLERANCE when not given."""

    def __post_init__(self) -> None:
        self.hf_dir, self.mcore_dir = Path(self.hf_dir), Path(self.mcore_dir)
        require(
            Path(self.model.load) == self.mcore_dir,
            f"VerifyConfig.model.load ({self.model.load}) must be --mcore-dir ({self.mcore_dir})",
        )
        require(
            self.micro_batch_size >= 1,
            f"--micro-batch-size must be >= 1, got {self.micro_batch_size}",
        )
        pp = self.parallel.pipeline_model_parallel_size
        interleaved = (
            self.parallel.num_layers_per_virtual_pipeline_stage is not None
            or self.parallel.virtual_pipeline_model_parallel_size is not None
        )
        require(
            not interleaved or self.micro_batch_size % pp == 0,
            f"interleaved pipeline needs a batch ({self.micro_batch_size}) that is a multiple "
            f"of the pipeline size ({pp}); raise --micro-batch-size",
        )
        if self.tolerance is None:
            self.tolerance = DEFAULT_TOLERANCE[self.model.dtype_name]
        require(self.tolerance >= 0, f"--tolerance must be >= 0, got {self.tolerance}")
