"""ParallelConfig: megatron's model-parallel layout (Megatron-LM flag names).

Data parallel is what is left of the world (world size / (TP x PP)); derived sizes, such as
the virtual-pipeline size from `--num-layers-per-virtual-pipeline-stage`, are computed here
and nowhere else (`for_model`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from megatron_o1p.config.flags import Flags, flag, require
from megatron_o1p.errors import ConfigError


@dataclass
class ParallelConfig(Flags):
    """Megatron-LM's model-parallel flags; data parallel is what is left of the world."""

    tensor_model_parallel_size: int = flag(1, "tensor-parallel size (megatron TP)")
    pipeline_model_parallel_size: int = flag(1, "pipeline-parallel size (megatron PP)")
    num_layers_per_virtual_pipeline_stage: int | None = flag(
        None, "layers per virtual pipeline stage: interleaved 1F1B (needs PP >= 2)"
    )
    sequence_parallel: bool = flag(
        False, "shard norm and dropout activations over TP (no effect at TP 1)"
    )
    expert_model_parallel_size: int = flag(
        1,
        "expert-parallel size (megatron EP, mixture-of-experts models): each rank holds "
        "num_experts / EP experts",
    )
    expert_tensor_parallel_size: int | None = flag(
        None,
        "tensor-parallel size inside each expert (megatron ETP); default 1 (whole experts, "
        "as fine-grained Qwen3-MoE experts run best) with expert parallelism, else TP",
    )
    virtual_pipeline_model_parallel_size: int | None = None
    """Model chunks per pipeline rank (interleaved 1F1B); None = not interleaved. Derived from
    --num-layers-per-virtual-pipeline-stage by `for_model`."""
    batch_p2p_comm: bool | None = None
    """Batch pipeline send/recv ops. None = megatron's default except where it is unsafe."""

    def __post_init__(self) -> None:
        if self.expert_tensor_parallel_size is None:
            # megatron reduces the experts' gradients over their own data-parallel group only
            # at EP > 1; at EP 1 they are reduced as dense weights, which is right only when
            # the experts are split over TP like the rest (ETP = TP)
            ep1 = self.expert_model_parallel_size == 1
            self.expert_tensor_parallel_size = self.tensor_model_parallel_size if ep1 else 1
        for name in (
            "tensor_model_parallel_size",
            "pipeline_model_parallel_size",
            "expert_model_parallel_size",
            "expert_tensor_parallel_size",
        ):
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be >= 1, got {value}")
        per_stage = self.num_layers_per_virtual_pipeline_stage
        require(
            per_stage is None or per_stage >= 1,
            f"--num-layers-per-virtual-pipeline-stage must be >= 1, got {per_stage}",
        )
        vpp = self.virtual_pipeline_model_parallel_size
        virtual = vpp is not None or per_stage is not None
        if virtual and self.pipeline_model_parallel_size < 2:
            raise ConfigError(
                f"virtual pipeline stages ({vpp or per_stage}) need "
                f"--pipeline-model-parallel-size >= 2, got {self.pipeline_model_parallel_size}; "
                "drop --num-layers-per-virtual-pipeline-stage"
            )
        interleaved_pp2 = vpp is not None and self.pipeline_model_parallel_size == 2
        if self.batch_p2p_comm is None:
            self.batch_p2p_comm = not interleaved_pp2
        elif self.batch_p2p_comm and interleaved_pp2:
            # NOTE: measured on megatron-core 0.16.1/0.19.2: the interleaved schedule with PP=2
            # and batched p2p returns wrong losses and grads without any error.
            raise ConfigError(
                "interleaved pipeline (virtual stages) with --pipeline-model-parallel-size 2 and "
                "batched p2p communication gives silently wrong gradients; use unbatched p2p "
                "(batch_p2p_comm=False) or a pipeline size other than 2"
            )
        if self.sequence_parallel and self.tensor_model_parallel_size == 1:
            self.sequence_parallel = False  # megatron ignores it at TP=1 too; keep configs honest

    @property
    def model_parallel_size(self) -> int:
        return self.tensor_model_parallel_size * self.pipeline_model_parallel_size

    def for_model(self, num_layers: int) -> ParallelConfig:
        """This layout with the virtual-pipeline size derived for a model of `num_layers`."""
        per_stage = self.num_layers_per_virtual_pipeline_stage
        if not per_stage or self.virtual_pipeline_model_parallel_size is not None:
            return self
        stages = self.pipeline_model_parallel_size * per_stage
        require(
            num_layers % stages == 0,
            f"--num-layers-per-virtual-pipeline-stage {per_stage} x "
            f"--pipeline-model-parallel-size {self.pipeline_model_parallel_size} must divide "
            f"the model's {num_layers} layers; choose sizes that divide it",
        )
        return dataclasses.replace(
            self, virtual_pipeline_model_parallel_size=num_layers // stages, batch_p2p_comm=None
        )

    def check_world(self, world_size: int) -> int:
        """The data-parallel size at `world_size` ranks."""
        tp, pp = self.tensor_model_parallel_size, self.pipeline_model_parallel_size
        require(
            world_size % (tp * pp) == 0,
            f"world size {world_size} is not divisible by tensor ({tp}) x pipeline ({pp}) "
            "parallel size; change --nproc-per-node or the parallel sizes",
        )
        ep, etp = self.expert_model_parallel_size, self.expert_tensor_parallel_size
        # megatron lays the experts over each pipeline stage's ranks: EP x expert TP x expert DP
        require(
            (world_size // pp) % (ep * etp) == 0,
            f"--expert-model-parallel-size {ep} x --expert-tensor-parallel-size {etp} must "
            f"divide the {world_size // pp} ranks of a pipeline stage (world size {world_size} / "
            f"pipeline {pp}); change --nproc-per-node or the parallel sizes",
        )
        return world_size // (tp * pp)
