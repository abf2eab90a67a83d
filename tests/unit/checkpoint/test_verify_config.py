"""VerifyConfig: `o1p convert verify`'s flags, its defaults, and checks made before any rank."""

import argparse
from pathlib import Path

import pytest

from megatron_o1p.commands import convert as command
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.errors import ConfigError


def _config(*argv: str):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["verify", "--hf-dir", "h", "--mcore-dir", "m", *argv])
    from megatron_o1p.checkpoint.verify_config import VerifyConfig

    return VerifyConfig.from_args(args, model=ModelConfig.from_args(args, load=args.mcore_dir))


def test_defaults():
    cfg = _config()
    assert cfg.model.load == cfg.mcore_dir == Path("m") and cfg.hf_dir == Path("h")
    assert cfg.model.seq_length == 64 and cfg.micro_batch_size == 2 and cfg.seed == 1234
    assert cfg.tolerance == 1e-4 and cfg.parallel.virtual_pipeline_model_parallel_size is None


def test_bf16_tolerance_and_explicit_tolerance():
    assert _config("--bf16").tolerance == 1.5e-1
    assert _config("--bf16", "--tolerance", "1e-15").tolerance == 1e-15


def test_every_parallel_flag_is_taken():
    argv = "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 "
    cfg = _config(*(argv + "--num-layers-per-virtual-pipeline-stage 1 --sequence-parallel").split())
    parallel = cfg.parallel
    assert parallel.tensor_model_parallel_size == 2 and parallel.pipeline_model_parallel_size == 2
    assert parallel.num_layers_per_virtual_pipeline_stage == 1 and parallel.sequence_parallel


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--micro-batch-size", "0"], "--micro-batch-size must be >= 1"),
        (["--tolerance", "-1"], "--tolerance must be >= 0"),
        (
            "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 "
            "--micro-batch-size 3".split(),
            "interleaved pipeline needs a batch \\(3\\) that is a multiple of the pipeline size",
        ),
    ],
)
def test_bad_values_raise_when_the_config_is_made(argv, message):
    with pytest.raises(ConfigError, match=message):
        _config(*argv)
