"""`o1p train`: flags (Megatron-LM names) -> TrainConfig -> training/trainer.train.

Tested by tests/unit/training/test_config.py and tests/distributed/test_train.py.
"""

from __future__ import annotations

import argparse

from megatron_o1p.training.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    TrainConfig.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.distributed.initialize import shutdown
    from megatron_o1p.training.trainer import train

    train(TrainConfig.from_args(args))
    shutdown()
    return 0
