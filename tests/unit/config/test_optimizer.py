"""OptimizerConfig: `o1p train`'s optimizer flags, their checks, and the LR schedule it builds
(megatron's `OptimizerParamScheduler`, driven by a plain torch optimizer: the schedule only
writes `param_groups[*]["lr"]`)."""

import argparse
import math
import re

import pytest
import torch

from megatron_o1p.config.optimizer import OptimizerConfig
from megatron_o1p.errors import ConfigError


def _parse(*argv: str) -> OptimizerConfig:
    parser = argparse.ArgumentParser()
    OptimizerConfig.add_arguments(parser)
    return OptimizerConfig.from_args(parser.parse_args(list(argv)))


def test_defaults_are_the_train_commands():
    cfg = _parse()
    assert (cfg.lr, cfg.min_lr, cfg.lr_decay_style, cfg.lr_warmup_fraction) == (
        2e-7,
        0.0,
        "cosine",
        0.1,
    )
    assert (cfg.weight_decay, cfg.clip_grad, cfg.adam_beta1, cfg.adam_beta2) == (
        0.0,
        1.0,
        0.9,
        0.999,
    )


def test_flags_set_fields():
    cfg = _parse("--lr", "1e-3", "--min-lr", "1e-5", "--lr-decay-style", "linear")
    assert (cfg.lr, cfg.min_lr, cfg.lr_decay_style) == (1e-3, 1e-5, "linear")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lr_decay_style": "step"}, "--lr-decay-style 'step'"),
        ({"lr_warmup_fraction": 1.0}, "--lr-warmup-fraction must be in [0, 1)"),
        ({"lr": -1.0}, "--lr must be >= 0"),
        ({"lr": 1e-4, "min_lr": 1e-3}, "--min-lr must be in [0, --lr"),
        ({"weight_decay": -0.1}, "--weight-decay must be >= 0"),
        ({"clip_grad": -1.0}, "--clip-grad must be >= 0"),
        ({"adam_beta2": 1.0}, "--adam-beta2 must be in [0, 1)"),
    ],
)
def test_bad_values_fail_when_made(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        OptimizerConfig(**fields)


def _schedule(cfg: OptimizerConfig, total_iters: int) -> list[float]:
    """The learning rate each of `total_iters` steps uses."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    scheduler = cfg.build_scheduler(optimizer, total_iters)
    rates = []
    for _ in range(total_iters):
        rates.append(optimizer.param_groups[0]["lr"])
        scheduler.step(increment=1)
    return rates


def test_cosine_schedule_warms_up_then_decays_to_min_lr():
    cfg = OptimizerConfig(lr=1.0, min_lr=0.1, lr_warmup_fraction=0.2)
    rates = _schedule(cfg, 10)
    assert rates[:2] == pytest.approx([0.0, 0.5])  # 2 warmup steps from 0
    decayed = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (i - 2) / 8)) for i in range(2, 10)]
    assert rates[2:] == pytest.approx(decayed)


def test_no_warmup_starts_at_lr():
    rates = _schedule(OptimizerConfig(lr=1.0, lr_warmup_fraction=0.0, lr_decay_style="constant"), 4)
    assert rates == pytest.approx([1.0] * 4)


def test_weight_decay_is_constant():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    scheduler = OptimizerConfig(weight_decay=0.01).build_scheduler(optimizer, 5)
    for _ in range(5):
        assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.01)
        scheduler.step(increment=1)
