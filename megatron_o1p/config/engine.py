"""EngineConfig: how `o1p sample` and `o1p evaluate` build their vLLM engine.

`rollout/vllm_engine.build_engine` reads it (and sets the engine up for a CPU-only machine or
for GPUs); the flags are defined here once for both commands.
"""

from __future__ import annotations

from dataclasses import dataclass

from megatron_o1p.config.flags import Flags, flag, require

DEFAULT_CPU_KV_CACHE_MB = 256
"""CPU KV cache: 256 MiB holds ~4k tokens of a 7B-shaped layer stack and plenty for tiny
models (vLLM's own default asks for 92% of host RAM)."""


@dataclass
class EngineConfig(Flags):
    """How to build the vLLM engine (flags map one-to-one onto fields)."""

    model: str = flag(help="HF model folder vLLM serves (safetensors, config.json, tokenizer)")
    """The model folder; the stages identify the model by its resolved path."""
    tensor_parallel_size: int = flag(
        1, "vLLM tensor parallelism inside one node (GPU only; not megatron's TP)"
    )
    """GPUs one engine spans; must be 1 on a CPU-only machine."""
    seed: int = 0
    """Engine seed; the commands pass the base `--seed` (every request carries its own seed)."""
    dtype: str = flag(
        "auto", "model dtype for vLLM: auto (the checkpoint's), bfloat16, float16 or float32"
    )
    """Passed to vLLM as given."""
    max_model_len: int | None = flag(
        None, "prompt + response token limit of the engine (default: the model's)"
    )
    """Tokens; None = the model's `max_position_embeddings`."""
    kv_cache_memory_mb: int = flag(
        DEFAULT_CPU_KV_CACHE_MB, "KV-cache size in MiB on a CPU-only machine (ignored on GPUs)"
    )
    """MiB of host memory for the KV cache (CPU only)."""
    gpu_memory_utilization: float = flag(
        0.9, "fraction of each GPU's memory vLLM may take (GPU only)"
    )
    """In (0, 1]; on GPUs it sizes the KV cache."""

    def __post_init__(self) -> None:
        require(
            self.tensor_parallel_size >= 1,
            f"--tensor-parallel-size must be >= 1, got {self.tensor_parallel_size}",
        )
        require(
            self.kv_cache_memory_mb >= 1,
            f"--kv-cache-memory-mb must be >= 1, got {self.kv_cache_memory_mb}",
        )
        require(
            0 < self.gpu_memory_utilization <= 1,
            f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}",
        )
