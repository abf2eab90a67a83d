"""RefLogprobsConfig: its flags parse into the composed configs, and bad values stop at once."""

import argparse
from pathlib import Path

import pytest

from megatron_o1p.commands import ref_logprobs as command
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.errors import ConfigError
from megatron_o1p.training.ref_logprobs_config import RefLogprobsConfig


def _config(*argv: str) -> RefLogprobsConfig:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--load", "m", "--data", "d.parquet", *argv])
    return RefLogprobsConfig.from_args(args, logprob_impl=args.logprob_impl)


def test_defaults_and_composition():
    cfg = _config()
    assert cfg.model.load == Path("m") and cfg.model.seq_length == 4096
    assert cfg.micro_batch_size == 4 and cfg.mismatch_threshold == 0.1
    assert cfg.parallel.tensor_model_parallel_size == 1 and cfg.logprob_impl == "chunked"
    assert cfg.out is None and cfg.destination == Path("d.parquet")


def test_flags_reach_their_configs():
    argv = "--out o.parquet --pipeline-model-parallel-size 2 --seq-length 16 --bf16 "
    cfg = _config(*(argv + "--logprob-impl native --micro-batch-size 3").split())
    assert cfg.destination == Path("o.parquet") and cfg.parallel.pipeline_model_parallel_size == 2
    assert cfg.model.seq_length == 16 and cfg.model.bf16 and cfg.logprob_impl == "native"
    assert cfg.micro_batch_size == 3


def test_stage_takes_no_training_only_flags():
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    options = {o for action in parser._actions for o in action.option_strings}
    assert "--recompute-activations" not in options and "--sequence-parallel" not in options
    assert "--loss" not in options and "--logprob-impl" in options


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--micro-batch-size", "0"], "--micro-batch-size must be >= 1"),
        (["--mismatch-threshold", "-1"], "--mismatch-threshold must be >= 0"),
        (["--tensor-model-parallel-size", "0"], "--tensor-model-parallel-size must be >= 1"),
    ],
)
def test_bad_values_raise_when_the_config_is_made(argv, message):
    with pytest.raises(ConfigError, match=message):
        _config(*argv)


def test_unknown_logprob_impl_and_virtual_pipeline_refused():
    model = ModelConfig(load=Path("m"))
    with pytest.raises(ConfigError, match="--logprob-impl 'fast'"):
        RefLogprobsConfig(data=Path("d"), model=model, logprob_impl="fast")
    from megatron_o1p.config.parallel import ParallelConfig

    parallel = ParallelConfig(
        pipeline_model_parallel_size=2, num_layers_per_virtual_pipeline_stage=1
    )
    with pytest.raises(ConfigError, match="drop the virtual pipeline stages"):
        RefLogprobsConfig(data=Path("d"), model=model, parallel=parallel)
