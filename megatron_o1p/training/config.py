"""TrainConfig: one field per `o1p train` flag (Megatron-LM names), validated before compute."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from megatron_o1p.errors import ConfigError
from megatron_o1p.training.forward_step import LOSSES


@dataclass
class TrainConfig:
    load: Path
    """A checkpoint from `o1p convert hf-to-mcore`, or a run's --save folder to resume."""
    data: Path
    """Parquet from `o1p build-dataset` (+ `o1p ref-logprobs` for o1-pruner and dpo)."""
    save: Path
    loss: str = "o1-pruner"
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    num_layers_per_virtual_pipeline_stage: int | None = None
    sequence_parallel: bool = False
    micro_batch_size: int = 1
    """Sequences (DPO: pairs) per micro-batch, per data-parallel rank."""
    global_batch_size: int = 32
    """Sequences (DPO: pairs) per optimizer step, over all data-parallel ranks."""
    seq_length: int = 4096
    """Max tokens per sequence (prompt + response); longer ones are cut and counted."""
    lr: float = 2e-7
    min_lr: float = 0.0
    lr_decay_style: str = "cosine"
    lr_warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    clip_grad: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    train_epochs: int | None = 1
    train_iters: int | None = None
    """Overrides train_epochs when set."""
    bf16: bool = False
    epsilon: float = 0.2
    epsilon_high: float | None = None
    ratio: str = "token"
    loss_aggregation: str = "seq-mean"
    dpo_beta: float = 0.1
    logprob_impl: str = "chunked"
    recompute_activations: bool = False
    freeze_layers: int | None = None
    """Train only the last N transformer layers (+ final norm and output layer)."""
    save_interval: int | None = None
    """Iterations between checkpoints; the last iteration is always saved."""
    log_interval: int = 1
    tensorboard_dir: Path | None = None
    seed: int = 1234
    spec: str = "auto"
    exit_after_iters: int | None = None
    """Stop (with a checkpoint) after this many iterations of this run (tests, chunked jobs)."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        for name in ("micro_batch_size", "global_batch_size", "seq_length", "log_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                f"--global-batch-size ({self.global_batch_size}) must be a multiple of "
                f"--micro-batch-size ({self.micro_batch_size}) x data-parallel size"
            )
        if self.lr_decay_style not in ("constant", "linear", "cosine"):
            raise ConfigError(f"--lr-decay-style {self.lr_decay_style!r}: constant|linear|cosine")
        if not 0 <= self.lr_warmup_fraction < 1:
            raise ConfigError("--lr-warmup-fraction must be in [0, 1)")
        if self.train_iters is None and not self.train_epochs:
            raise ConfigError("give --train-epochs or --train-iters")

    def check_data_parallel(self, dp_size: int) -> int:
        """Micro-batches per step on each data-parallel rank."""
        per_step = self.micro_batch_size * dp_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"--global-batch-size ({self.global_batch_size}) must be divisible by "
                f"--micro-batch-size ({self.micro_batch_size}) x data-parallel size ({dp_size})"
            )
        return self.global_batch_size // per_step

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
