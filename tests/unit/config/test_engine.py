"""EngineConfig: its flags (model required), the seed passed in, validation when made."""

import argparse

import pytest

from megatron_o1p.config.engine import DEFAULT_CPU_KV_CACHE_MB, EngineConfig
from megatron_o1p.errors import ConfigError


def test_flags_build_the_config_with_the_commands_seed():
    parser = argparse.ArgumentParser()
    EngineConfig.add_arguments(parser)
    args = parser.parse_args(["--model", "hf", "--max-model-len", "256", "--dtype", "bfloat16"])
    cfg = EngineConfig.from_args(args, seed=7)
    assert cfg == EngineConfig(model="hf", seed=7, max_model_len=256, dtype="bfloat16")
    assert cfg.kv_cache_memory_mb == DEFAULT_CPU_KV_CACHE_MB and cfg.tensor_parallel_size == 1
    with pytest.raises(SystemExit):  # --model is required
        parser.parse_args([])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tensor_parallel_size": 0}, "--tensor-parallel-size must be >= 1"),
        ({"kv_cache_memory_mb": 0}, "--kv-cache-memory-mb must be >= 1"),
        ({"gpu_memory_utilization": 1.5}, r"--gpu-memory-utilization must be in \(0, 1\]"),
    ],
)
def test_bad_values_are_refused_when_made(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig(model="hf", **kwargs)
