"""OptimizerConfig: Adam and its learning-rate schedule (Megatron-LM flag names).

`build_optimizer` wraps megatron's `get_megatron_optimizer` (Adam, global-norm gradient clipping,
the distributed optimizer where asked) and `build_scheduler` megatron's
`OptimizerParamScheduler` (linear warmup from 0, then constant, linear or cosine decay to
--min-lr). megatron-core is imported inside them, so `o1p train --help` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from megatron_o1p.config.choices import LR_DECAY_STYLES
from megatron_o1p.config.flags import Flags, flag, require


@dataclass(frozen=True)
class OptimizerConfig(Flags):
    lr: float = flag(2e-7, "peak learning rate, reached at the end of the warmup")
    min_lr: float = flag(0.0, "learning rate at the end of the decay")
    lr_decay_style: str = flag(
        "cosine", "decay from --lr to --min-lr after the warmup", choices=LR_DECAY_STYLES
    )
    lr_warmup_fraction: float = flag(
        0.1, "fraction of the training iterations spent warming up linearly from 0"
    )
    weight_decay: float = flag(0.0, "decoupled (AdamW) weight decay, constant over the run")
    clip_grad: float = flag(1.0, "max global gradient L2 norm; 0 = no clipping")
    adam_beta1: float = flag(0.9, "Adam beta1 (first-moment decay)")
    adam_beta2: float = flag(0.999, "Adam beta2 (second-moment decay)")

    def __post_init__(self) -> None:
        require(
            self.lr_decay_style in LR_DECAY_STYLES,
            f"--lr-decay-style {self.lr_decay_style!r}: {'|'.join(LR_DECAY_STYLES)}",
        )
        require(
            0 <= self.lr_warmup_fraction < 1,
            f"--lr-warmup-fraction must be in [0, 1), got {self.lr_warmup_fraction}",
        )
        require(self.lr >= 0, f"--lr must be >= 0, got {self.lr}")
        require(
            0 <= self.min_lr <= self.lr,
            f"--min-lr must be in [0, --lr {self.lr}], got {self.min_lr}",
        )
        require(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        require(self.clip_grad >= 0, f"--clip-grad must be >= 0 (0 = off), got {self.clip_grad}")
        for name in ("adam_beta1", "adam_beta2"):
            beta = getattr(self, name)
            require(0 <= beta < 1, f"--{name.replace('_', '-')} must be in [0, 1), got {beta}")

    def build_optimizer(self, ddp_chunks: list, *, bf16: bool, params_dtype, distributed_optimizer):
        """Megatron's Adam over the DDP-wrapped model chunks.

        Args:
            ddp_chunks: megatron `DistributedDataParallel` modules, one per model chunk.
            bf16: bf16 parameters (megatron keeps fp32 main weights for the update).
            params_dtype: the model's parameter dtype (torch.bfloat16 or torch.float32).
            distributed_optimizer: shard the optimizer state over data-parallel ranks.
        """
        from megatron.core.optimizer import OptimizerConfig as MegatronOptimizerConfig
        from megatron.core.optimizer import get_megatron_optimizer

        config = MegatronOptimizerConfig(
            optimizer="adam",
            lr=self.lr,
            min_lr=self.min_lr,
            weight_decay=self.weight_decay,
            adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2,
            clip_grad=self.clip_grad,
            bf16=bf16,
            params_dtype=params_dtype,
            use_distributed_optimizer=distributed_optimizer,
        )
        return get_megatron_optimizer(config, ddp_chunks)

    def build_scheduler(self, optimizer, total_iters: int):
        """Megatron's LR (and constant weight-decay) schedule over `total_iters` steps; each
        `step(increment=1)` advances it one optimizer step."""
        from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

        warmup = int(self.lr_warmup_fraction * total_iters)
        steps = max(total_iters, 1)
        return OptimizerParamScheduler(
            optimizer,
            init_lr=0.0 if warmup else self.lr,
            max_lr=self.lr,
            min_lr=self.min_lr,
            lr_warmup_steps=warmup,
            lr_decay_steps=steps,
            lr_decay_style=self.lr_decay_style,
            start_wd=self.weight_decay,
            end_wd=self.weight_decay,
            wd_incr_steps=steps,
            wd_incr_style="constant",
        )
