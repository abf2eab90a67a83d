"""`o1p convert`'s actions parse into the stage configs (no torch needed to parse)."""

import argparse
import dataclasses
from pathlib import Path

import pytest

from megatron_o1p.checkpoint.convert_config import HfToMcoreConfig, McoreToHfConfig
from megatron_o1p.commands import convert as command
from megatron_o1p.config.model import DEFAULT_VOCAB_MULTIPLE
from megatron_o1p.errors import ConfigError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_hf_to_mcore_flags():
    argv = "hf-to-mcore --hf-dir h --out m --spec local --tensor-model-parallel-size 2 "
    argv += "--expert-model-parallel-size 4 "
    args = _args(*(argv + "--allow-bin-weights").split())
    flags = HfToMcoreConfig.from_args(args, spec=args.spec)
    assert dataclasses.asdict(flags) == {
        "hf_dir": Path("h"),
        "out": Path("m"),
        "spec": "local",
        "tensor_model_parallel_size": 1,
        "pipeline_model_parallel_size": 1,
        "expert_model_parallel_size": 1,
        "make_vocab_size_divisible_by": DEFAULT_VOCAB_MULTIPLE,
        "allow_bin_weights": True,
        "overwrite": False,
    }
    assert args.spec == "local" and args.tensor_model_parallel_size == 2
    assert args.pipeline_model_parallel_size == 1 and args.expert_model_parallel_size == 4


def test_mcore_to_hf_flags():
    args = _args("mcore-to-hf", "--mcore-dir", "m", "--out", "h", "--overwrite")
    flags = McoreToHfConfig.from_args(args)
    assert dataclasses.asdict(flags) == {
        "mcore_dir": Path("m"),
        "out": Path("h"),
        "max_shard_size": "2GB",
        "overwrite": True,
    }


def test_layout_sizes_are_validated():
    from megatron_o1p.config.parallel import ParallelConfig

    args = _args("hf-to-mcore", "--hf-dir", "h", "--out", "m", "--tensor-model-parallel-size", "0")
    with pytest.raises(ConfigError, match="--tensor-model-parallel-size must be >= 1"):
        ParallelConfig.from_args(args)


def test_spec_choices_come_from_the_constants():
    from megatron_o1p.config.choices import SPEC_NAMES

    with pytest.raises(SystemExit):
        _args("hf-to-mcore", "--hf-dir", "h", "--out", "m", "--spec", "fast")
    for name in SPEC_NAMES:
        assert _args("verify", "--hf-dir", "h", "--mcore-dir", "m", "--spec", name).spec == name
