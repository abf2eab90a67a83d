"""`o1p train`: flags (Megatron-LM names) -> TrainConfig -> training/trainer.train."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.training.forward_step import LOSSES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--loss", choices=LOSSES, default="o1-pruner")
    add("--load", type=Path, required=True, help="converted checkpoint, or a run to resume")
    add("--data", type=Path, required=True, help="parquet from build-dataset (+ ref-logprobs)")
    add("--save", type=Path, required=True, help="run folder; rerunning resumes from it")
    add("--tensor-model-parallel-size", type=int, default=1)
    add("--pipeline-model-parallel-size", type=int, default=1)
    add("--num-layers-per-virtual-pipeline-stage", type=int, default=None)
    add("--sequence-parallel", action="store_true")
    add("--micro-batch-size", type=int, default=1)
    add("--global-batch-size", type=int, default=32)
    add("--seq-length", type=int, default=4096)
    add("--lr", type=float, default=2e-7)
    add("--min-lr", type=float, default=0.0)
    add("--lr-decay-style", choices=("constant", "linear", "cosine"), default="cosine")
    add("--lr-warmup-fraction", type=float, default=0.1)
    add("--weight-decay", type=float, default=0.0)
    add("--clip-grad", type=float, default=1.0)
    add("--adam-beta1", type=float, default=0.9)
    add("--adam-beta2", type=float, default=0.999)
    add("--train-epochs", type=int, default=1)
    add("--train-iters", type=int, default=None)
    add("--bf16", action="store_true")
    add("--epsilon", type=float, default=0.2)
    add("--epsilon-high", type=float, default=None)
    add("--ratio", choices=("token", "sequence"), default="token")
    add("--loss-aggregation", choices=("seq-mean", "token-mean"), default="seq-mean")
    add("--dpo-beta", type=float, default=0.1)
    add("--logprob-impl", choices=("chunked", "native", "triton"), default="chunked")
    add("--recompute-activations", action="store_true")
    add("--freeze-layers", type=int, default=None, help="train only the last N layers")
    add("--save-interval", type=int, default=None)
    add("--log-interval", type=int, default=1)
    add("--tensorboard-dir", type=Path, default=None)
    add("--seed", type=int, default=1234)
    add("--spec", choices=("auto", "te", "local"), default="auto")
    add("--exit-after-iters", type=int, default=None,
        help="checkpoint and stop after this many iterations of this run")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.distributed.initialize import shutdown
    from megatron_o1p.training.config import TrainConfig
    from megatron_o1p.training.trainer import train

    fields = {k: v for k, v in vars(args).items() if k not in ("command",)}
    train(TrainConfig(**fields))
    shutdown()
    return 0
