"""ParallelConfig guards the layouts megatron gets silently wrong."""

import pytest

from megatron_o1p.distributed.initialize import ParallelConfig
from megatron_o1p.errors import ConfigError


def test_interleaved_pp2_with_batched_p2p_is_refused():
    with pytest.raises(ConfigError, match="silently wrong gradients"):
        ParallelConfig(
            pipeline_model_parallel_size=2,
            virtual_pipeline_model_parallel_size=2,
            batch_p2p_comm=True,
        )


def test_interleaved_pp2_defaults_to_unbatched_p2p():
    cfg = ParallelConfig(pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2)
    assert cfg.batch_p2p_comm is False
    assert (
        ParallelConfig(
            pipeline_model_parallel_size=4, virtual_pipeline_model_parallel_size=2
        ).batch_p2p_comm
        is True
    )


def test_virtual_stages_need_a_pipeline():
    with pytest.raises(ConfigError, match="need --pipeline-model-parallel-size >= 2"):
        ParallelConfig(virtual_pipeline_model_parallel_size=2)


def test_sequence_parallel_is_off_at_tp1():
    assert ParallelConfig(sequence_parallel=True).sequence_parallel is False
    assert ParallelConfig(tensor_model_parallel_size=2, sequence_parallel=True).sequence_parallel
