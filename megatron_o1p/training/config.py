"""TrainConfig: everything `o1p train` is told, composed of the component configs.

    model      config/model.py      --load, --spec, --bf16, --seq-length, --recompute-activations
    parallel   config/parallel.py   TP, PP, virtual pipeline, sequence parallel
    optimizer  config/optimizer.py  Adam, gradient clipping, LR schedule
    loss       config/loss.py       --loss and its hyper-parameters

plus the run's own fields below (data, batch sizes, length, intervals). Flags use Megatron-LM
names. Every check that needs no file runs when the config is made, before any process group;
`training/trainer.py` checks the data and the checkpoint before the first collective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.config.loss import LossConfig
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.config.optimizer import OptimizerConfig
from megatron_o1p.config.parallel import ParallelConfig

_POSITIVE = ("micro_batch_size", "global_batch_size", "log_interval")
_POSITIVE_IF_SET = ("train_iters", "save_interval", "exit_after_iters")


@dataclass
class TrainConfig(Flags):
    data: Path = shared(
        "data",
        "dataset parquet from `o1p build-dataset` (+ `o1p ref-logprobs` for o1-pruner and dpo)",
    )
    save: Path = flag(help="run folder for checkpoints; rerunning the same command resumes it")
    model: ModelConfig
    micro_batch_size: int = shared(
        "micro_batch_size",
        "sequences (DPO: pairs) per micro-batch on each data-parallel rank",
        default=1,
    )
    global_batch_size: int = flag(
        32, "sequences (DPO: pairs) per optimizer step, over all data-parallel ranks"
    )
    train_epochs: int | None = flag(
        1, "passes over the data (each drops its incomplete last batch)"
    )
    train_iters: int | None = flag(None, "optimizer steps in all; overrides --train-epochs")
    freeze_layers: int | None = flag(
        None, "train only the last N transformer layers (+ the final norm and output layer)"
    )
    save_interval: int | None = flag(
        None, "iterations between checkpoints; the last iteration is always saved"
    )
    log_interval: int = flag(1, "iterations between log lines (TensorBoard gets every one)")
    tensorboard_dir: Path | None = flag(
        None, "write TensorBoard scalars here (needs the tensorboard package)"
    )
    seed: int = shared("seed", "seed of the data order and of megatron's RNGs", default=1234)
    exit_after_iters: int | None = flag(
        None, "checkpoint and stop after this many iterations of this run (chunked jobs, tests)"
    )
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        self.data, self.save = Path(self.data), Path(self.save)
        if self.tensorboard_dir is not None:
            self.tensorboard_dir = Path(self.tensorboard_dir)
        for name in _POSITIVE:
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be >= 1, got {value}")
        for name in _POSITIVE_IF_SET:
            value = getattr(self, name)
            require(
                value is None or value >= 1,
                f"--{name.replace('_', '-')} must be >= 1 if given, got {value}",
            )
        require(
            self.freeze_layers is None or self.freeze_layers >= 0,
            f"--freeze-layers must be >= 0, got {self.freeze_layers}",
        )
        require(
            self.global_batch_size % self.micro_batch_size == 0,
            f"--global-batch-size ({self.global_batch_size}) must be a multiple of "
            f"--micro-batch-size ({self.micro_batch_size}) x data-parallel size",
        )
        require(
            self.train_iters is not None or bool(self.train_epochs),
            "give --train-epochs or --train-iters",
        )
        tp = self.parallel.tensor_model_parallel_size
        require(
            not (self.parallel.sequence_parallel and self.model.seq_length % tp),
            f"--sequence-parallel needs --seq-length divisible by TP ({tp}), "
            f"got {self.model.seq_length}",
        )

    def check_data_parallel(self, dp_size: int) -> int:
        """Micro-batches per step on each data-parallel rank."""
        per_step = self.micro_batch_size * dp_size
        require(
            self.global_batch_size % per_step == 0,
            f"--global-batch-size ({self.global_batch_size}) must be divisible by "
            f"--micro-batch-size ({self.micro_batch_size}) x data-parallel size ({dp_size})",
        )
        return self.global_batch_size // per_step

    def to_json(self) -> dict:
        """The flat record written into a run's `o1p_checkpoint.json` as `train_config`.

        Spelled out, key by key: its keys and their order are a file format (the flat
        TrainConfig this composed one replaced), so a new field never reorders it.
        """
        model, parallel, opt, loss = self.model, self.parallel, self.optimizer, self.loss
        record = {
            "load": model.load,
            "data": self.data,
            "save": self.save,
            "loss": loss.loss,
            "tensor_model_parallel_size": parallel.tensor_model_parallel_size,
            "pipeline_model_parallel_size": parallel.pipeline_model_parallel_size,
            "num_layers_per_virtual_pipeline_stage": parallel.num_layers_per_virtual_pipeline_stage,
            "sequence_parallel": parallel.sequence_parallel,
            "micro_batch_size": self.micro_batch_size,
            "global_batch_size": self.global_batch_size,
            "seq_length": model.seq_length,
            "lr": opt.lr,
            "min_lr": opt.min_lr,
            "lr_decay_style": opt.lr_decay_style,
            "lr_warmup_fraction": opt.lr_warmup_fraction,
            "weight_decay": opt.weight_decay,
            "clip_grad": opt.clip_grad,
            "adam_beta1": opt.adam_beta1,
            "adam_beta2": opt.adam_beta2,
            "train_epochs": self.train_epochs,
            "train_iters": self.train_iters,
            "bf16": model.bf16,
            "epsilon": loss.epsilon,
            "epsilon_high": loss.epsilon_high,
            "ratio": loss.ratio,
            "loss_aggregation": loss.loss_aggregation,
            "dpo_beta": loss.dpo_beta,
            "logprob_impl": loss.logprob_impl,
            "recompute_activations": model.recompute_activations,
            "freeze_layers": self.freeze_layers,
            "save_interval": self.save_interval,
            "log_interval": self.log_interval,
            "tensorboard_dir": self.tensorboard_dir,
            "seed": self.seed,
            "spec": model.spec,
            "exit_after_iters": self.exit_after_iters,
            "pack_sequences": model.pack_sequences,
            "expert_model_parallel_size": parallel.expert_model_parallel_size,
            "expert_tensor_parallel_size": parallel.expert_tensor_parallel_size,
        }
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in record.items()}
