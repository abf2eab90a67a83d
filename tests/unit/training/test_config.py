"""TrainConfig: `o1p train`'s flags build the composed configs, every check runs when the
config is made, and `to_json` keeps the flat record `o1p_checkpoint.json` stores as
`train_config` (its keys and their order are a file format, so they are spelled out here)."""

import argparse
from pathlib import Path

import pytest

from megatron_o1p.commands import train as command
from megatron_o1p.errors import ConfigError
from megatron_o1p.training.config import TrainConfig

RECORD_KEYS = [
    "load",
    "data",
    "save",
    "loss",
    "tensor_model_parallel_size",
    "pipeline_model_parallel_size",
    "num_layers_per_virtual_pipeline_stage",
    "sequence_parallel",
    "micro_batch_size",
    "global_batch_size",
    "seq_length",
    "lr",
    "min_lr",
    "lr_decay_style",
    "lr_warmup_fraction",
    "weight_decay",
    "clip_grad",
    "adam_beta1",
    "adam_beta2",
    "train_epochs",
    "train_iters",
    "bf16",
    "epsilon",
    "epsilon_high",
    "ratio",
    "loss_aggregation",
    "dpo_beta",
    "logprob_impl",
    "recompute_activations",
    "freeze_layers",
    "save_interval",
    "log_interval",
    "tensorboard_dir",
    "seed",
    "spec",
    "exit_after_iters",
    "pack_sequences",
    "expert_model_parallel_size",
    "expert_tensor_parallel_size",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser


def _config(*argv: str) -> TrainConfig:
    args = _parser().parse_args(["--load", "m", "--data", "d.parquet", "--save", "run", *argv])
    return TrainConfig.from_args(args)


def test_defaults_make_the_flat_record():
    record = _config().to_json()
    assert list(record) == RECORD_KEYS
    assert record["load"] == "m" and record["data"] == "d.parquet" and record["save"] == "run"
    assert record["loss"] == "o1-pruner" and record["lr"] == 2e-7 and record["seed"] == 1234
    assert record["global_batch_size"] == 32 and record["micro_batch_size"] == 1
    assert record["seq_length"] == 4096 and record["train_epochs"] == 1
    assert record["tensorboard_dir"] is None and record["spec"] == "auto"
    assert record["pack_sequences"] is True  # packed unless --no-pack-sequences


def test_every_flag_reaches_its_config_and_the_record():
    argv = (
        "--loss dpo --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 "
        "--num-layers-per-virtual-pipeline-stage 1 --sequence-parallel --micro-batch-size 2 "
        "--global-batch-size 8 --seq-length 64 --lr 1e-3 --min-lr 1e-5 --lr-decay-style linear "
        "--lr-warmup-fraction 0 --weight-decay 0.01 --clip-grad 0.5 --adam-beta1 0.8 "
        "--adam-beta2 0.95 --train-epochs 3 --train-iters 7 --bf16 --epsilon 0.3 "
        "--epsilon-high 0.4 --ratio sequence --loss-aggregation token-mean --dpo-beta 0.2 "
        "--logprob-impl native --recompute-activations --freeze-layers 1 --save-interval 2 "
        "--log-interval 5 --tensorboard-dir tb --seed 7 --spec local --exit-after-iters 3 "
        "--no-pack-sequences --expert-model-parallel-size 2 --expert-tensor-parallel-size 2"
    )
    cfg = _config(*argv.split())
    assert cfg.loss.loss == "dpo" and cfg.optimizer.lr == 1e-3 and cfg.model.bf16
    assert cfg.parallel.pipeline_model_parallel_size == 2 and cfg.model.seq_length == 64
    assert cfg.tensorboard_dir == Path("tb")
    assert list(cfg.to_json().items()) == list(
        {
            "load": "m",
            "data": "d.parquet",
            "save": "run",
            "loss": "dpo",
            "tensor_model_parallel_size": 2,
            "pipeline_model_parallel_size": 2,
            "num_layers_per_virtual_pipeline_stage": 1,
            "sequence_parallel": True,
            "micro_batch_size": 2,
            "global_batch_size": 8,
            "seq_length": 64,
            "lr": 1e-3,
            "min_lr": 1e-5,
            "lr_decay_style": "linear",
            "lr_warmup_fraction": 0.0,
            "weight_decay": 0.01,
            "clip_grad": 0.5,
            "adam_beta1": 0.8,
            "adam_beta2": 0.95,
            "train_epochs": 3,
            "train_iters": 7,
            "bf16": True,
            "epsilon": 0.3,
            "epsilon_high": 0.4,
            "ratio": "sequence",
            "loss_aggregation": "token-mean",
            "dpo_beta": 0.2,
            "logprob_impl": "native",
            "recompute_activations": True,
            "freeze_layers": 1,
            "save_interval": 2,
            "log_interval": 5,
            "tensorboard_dir": "tb",
            "seed": 7,
            "spec": "local",
            "exit_after_iters": 3,
            "pack_sequences": False,
            "expert_model_parallel_size": 2,
            "expert_tensor_parallel_size": 2,
        }.items()
    )


def test_every_flag_is_documented():
    actions = [a for a in _parser()._actions if a.option_strings != ["-h", "--help"]]
    assert len(actions) == len(RECORD_KEYS)  # one flag per record field
    assert all((a.help or "").strip() for a in actions)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--global-batch-size", "3", "--micro-batch-size", "2"], "must be a multiple of"),
        (["--micro-batch-size", "0"], "--micro-batch-size must be >= 1"),
        (["--log-interval", "0"], "--log-interval must be >= 1"),
        (["--train-epochs", "0"], "give --train-epochs or --train-iters"),
        (["--train-iters", "0"], "--train-iters must be >= 1"),
        (["--save-interval", "0"], "--save-interval must be >= 1"),
        (["--freeze-layers", "-1"], "--freeze-layers must be >= 0"),
        (["--lr-warmup-fraction", "1"], "--lr-warmup-fraction must be in [0, 1)"),
        (["--epsilon", "2"], "--epsilon must be in (0, 1)"),
        (["--seq-length", "0"], "--seq-length must be >= 1"),
        (
            ["--tensor-model-parallel-size", "2", "--sequence-parallel", "--seq-length", "33"],
            "--sequence-parallel needs --seq-length divisible by TP (2)",
        ),
        (
            ["--num-layers-per-virtual-pipeline-stage", "1"],
            "need --pipeline-model-parallel-size >= 2",
        ),
    ],
)
def test_bad_flags_fail_when_the_config_is_made(argv, message):
    with pytest.raises(ConfigError) as err:
        _config(*argv)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "field, value",
    [("ratio", "per-sequence"), ("loss_aggregation", "sum"), ("logprob_impl", "fast")],
)
def test_loss_choices_are_checked_when_made_not_at_the_first_forward(field, value):
    args = _parser().parse_args(["--load", "m", "--data", "d", "--save", "s"])
    setattr(args, field, value)  # as a caller that skips argparse's choices would
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} '{value}'"):
        TrainConfig.from_args(args)


def test_micro_batches_per_step_at_a_data_parallel_size():
    cfg = _config("--global-batch-size", "8", "--micro-batch-size", "2")
    assert cfg.check_data_parallel(1) == 4 and cfg.check_data_parallel(2) == 2
    with pytest.raises(ConfigError, match=r"x data-parallel size \(8\)"):
        cfg.check_data_parallel(8)
