"""torch.distributed + megatron parallel_state from the torchrun environment.

The only module that calls `parallel_state.initialize_model_parallel`. Launch lines:

    python -m megatron_o1p <cmd> ...                              # one process, world size 1
    torchrun --nproc-per-node N [--nnodes M ...] -m megatron_o1p <cmd> ...

NCCL with one GPU per local rank when CUDA is present; gloo on the CPU, where
`cpu_compat.apply()` patches megatron-core first.

Tested by tests/distributed/test_logprobs.py, tests/distributed/test_train.py and the other
distributed tests (every worker initializes through it).
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from megatron_o1p.config.parallel import ParallelConfig
from megatron_o1p.distributed import cpu_compat
from megatron_o1p.errors import SetupError


@dataclass
class ParallelState:
    """What this rank is, after `initialize`. Groups are passed down from here."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    tp_rank: int
    tp_size: int
    pp_rank: int
    pp_size: int
    dp_rank: int
    dp_size: int
    config: ParallelConfig

    @property
    def tp_group(self):
        from megatron.core import parallel_state

        return parallel_state.get_tensor_model_parallel_group()

    @property
    def pp_group(self):
        from megatron.core import parallel_state

        return parallel_state.get_pipeline_model_parallel_group()

    @property
    def dp_group(self):
        from megatron.core import parallel_state

        return parallel_state.get_data_parallel_group()

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp_size - 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _init_process_group(backend: str) -> None:
    if dist.is_initialized():
        return
    if "RANK" not in os.environ:
        # Plain `python -m megatron_o1p ...`: a world of one, so the same code path serves both.
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    timeout = datetime.timedelta(minutes=int(os.environ.get("O1P_DIST_TIMEOUT_MIN", "30")))
    dist.init_process_group(backend=backend, timeout=timeout)


def initialize(config: ParallelConfig | None = None, *, seed: int = 1234) -> ParallelState:
    """Start torch.distributed and megatron's model-parallel groups for this process.

    Args:
        config: TP/PP/VPP/SP sizes; data parallel size = world size / (TP * PP).
        seed: base seed for megatron's model-parallel RNG tracker (TP ranks get offsets).

    Raises:
        ConfigError: world size not divisible by TP*PP.
    """
    config = config or ParallelConfig()
    use_cuda = cpu_compat.cuda_available()
    cpu_compat.apply()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise SetupError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs visible; "
                "lower --nproc-per-node"
            )
        torch.cuda.set_device(local_rank)
    _init_process_group("nccl" if use_cuda else "gloo")

    world = dist.get_world_size()
    config.check_world(world)
    tp, pp = config.tensor_model_parallel_size, config.pipeline_model_parallel_size
    from megatron.core import parallel_state, tensor_parallel

    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=tp,
            pipeline_model_parallel_size=pp,
            virtual_pipeline_model_parallel_size=config.virtual_pipeline_model_parallel_size,
            expert_model_parallel_size=config.expert_model_parallel_size,
            expert_tensor_parallel_size=config.expert_tensor_parallel_size,
        )
    tensor_parallel.model_parallel_cuda_manual_seed(seed)
    return ParallelState(
        rank=dist.get_rank(),
        world_size=world,
        local_rank=local_rank,
        device=torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
        tp_rank=parallel_state.get_tensor_model_parallel_rank(),
        tp_size=tp,
        pp_rank=parallel_state.get_pipeline_model_parallel_rank(),
        pp_size=pp,
        dp_rank=parallel_state.get_data_parallel_rank(),
        dp_size=parallel_state.get_data_parallel_world_size(),
        config=config,
    )


def shutdown() -> None:
    """Tear down megatron groups and the process group (tests reuse processes)."""
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()


def print0(*args) -> None:
    """Print on global rank 0 only (before `initialize`, the rank torchrun put in RANK)."""
    rank = dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))
    if rank == 0:
        print(*args, flush=True)
