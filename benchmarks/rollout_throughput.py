#!/usr/bin/env python
"""Rollout throughput: vLLM (as `o1p sample` runs it) vs HF `generate`, same model and prompts.

    python benchmarks/rollout_throughput.py [--prompts 8 --num-samples 8 --max-tokens 128]
        [--layers 15 --hidden 256 --intermediate 1024 --vocab 2000] [--repeats 3]

Builds a random ~15M-parameter Qwen2 (`build_tiny_qwen2`; head_dim 64, because vLLM's CPU
attention rejects 16) and samples K responses to each of the same chat prompts (the project's
`prompt_ids`) both ways, in one process with the same torch threads (`--threads`):

- vLLM: the engine of `o1p sample` (`rollout.vllm_engine.build_engine`: in-process, eager,
  torch.compile off on the CPU) with its `sampling_params` (per-problem seeds, raw sampler
  log-probs requested, as `o1p sample` does), all prompts in one `generate` call;
- HF: `model.generate` on all prompts as one left-padded batch, `do_sample=True`, the same
  temperature and top-p (top-k off, as in vLLM), `num_return_sequences=K`.

EOS stopping is off in both (`ignore_eos`; `min_new_tokens == max_new_tokens`), so every
sample has exactly `--max-tokens` tokens and both generate the same number of tokens. The
figure is generated tokens/s of the timed `generate` calls (after one warm-up call each; the
median of `--repeats`), engine and model load excluded. The timed calls alternate HF, vLLM,
HF, ... so that both see the same load on a shared machine. HF runs the checkpoint's fp32;
vLLM on the CPU picks bf16 for an fp32 checkpoint under `--dtype auto` (what `o1p sample`
does), and also returns each token's raw log-prob, which HF is not asked for.
Target on the CPU: vLLM >= 1.3x HF.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBLEMS = [
    "What is 2+3?",
    "A class has 12 students and each buys 3 pencils. How many pencils in total?",
    "Compute 17 times 23.",
    "What is half of 250?",
    "Find the remainder when 1000 is divided by 7.",
    "Oranges cost 40 cents each. How many dollars do 15 oranges cost?",
    "What is the square root of 144?",
    "Solve for x: 3x + 5 = 20.",
]


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=8, help="distinct prompts (8)")
    p.add_argument("--num-samples", type=int, default=8, help="K samples per prompt (8)")
    p.add_argument("--max-tokens", type=int, default=128, help="tokens per sample (128)")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="timed generate calls per backend")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--layers", type=int, default=15)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--heads", type=int, default=4, help="query heads (head_dim = hidden/heads)")
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--vocab", type=int, default=2000, help="<= ~2600 (built-in corpus)")
    p.add_argument("--hf-dtype", default="float32", help="HF generate dtype (float32)")
    p.add_argument("--model-dir", type=Path, default=None, help="reuse this HF folder")
    args = p.parse_args(argv)
    if args.hidden // args.heads == 16:
        p.error("head_dim 16 is rejected by vLLM's CPU attention; use hidden/heads >= 32")
    return args


def _prompts(model_dir: Path, n: int) -> list[list[int]]:
    from megatron_o1p.data.prompts import load_tokenizer, prompt_ids

    tok = load_tokenizer(model_dir)
    return [prompt_ids(tok, PROBLEMS[i % len(PROBLEMS)] + f" (#{i})") for i in range(n)]


def _hf_generator(args, prompts: list[list[int]]):
    """A function (prompt count, max tokens) -> generated tokens, running HF `generate`."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, args.hf_dtype)
    model = AutoModelForCausalLM.from_pretrained(str(args.model_dir), dtype=dtype).eval()
    pad = model.config.pad_token_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # left padding
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

    def generate(n: int, max_tokens: int) -> int:
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids[:n],
                attention_mask=mask[:n],
                do_sample=True,
                temperature=args.temperature,
                top_p=args.top_p,
                top_k=0,  # vLLM applies no top-k; HF's default is 50
                num_return_sequences=args.num_samples,
                max_new_tokens=max_tokens,
                min_new_tokens=max_tokens,  # EOS suppressed: every sample has max_tokens
                pad_token_id=pad,
            )
        new = out[:, width:]
        assert new.shape == (n * args.num_samples, max_tokens), new.shape
        return new.numel()

    return generate, str(dtype).removeprefix("torch.")


def _vllm_generator(args, prompts: list[list[int]]):
    """The same for the engine and sampling parameters of `o1p sample`."""
    from megatron_o1p.rollout.sample import problem_seed
    from megatron_o1p.rollout.vllm_engine import EngineConfig, build_engine, sampling_params

    llm = build_engine(EngineConfig(model=str(args.model_dir), seed=args.seed))
    from vllm.inputs import TokensPrompt

    calls = iter(range(1 << 30))

    def generate(n: int, max_tokens: int) -> int:
        call = next(calls)
        params = []
        for i in range(n):
            sp = sampling_params(
                num_samples=args.num_samples,
                temperature=args.temperature,
                top_p=args.top_p,
                max_tokens=max_tokens,
                seed=problem_seed(args.seed, f"{call}:{i}"),
            )
            sp.ignore_eos = True  # read when the request is added: every sample has max_tokens
            params.append(sp)
        outs = llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts[:n]], params, use_tqdm=False
        )
        lengths = [len(s.token_ids) for o in outs for s in o.outputs]
        assert lengths == [max_tokens] * (n * args.num_samples), lengths
        return sum(lengths)

    return generate, str(llm.llm_engine.model_config.dtype).removeprefix("torch.")


def main(argv=None) -> int:
    args = _parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    shape = f"{args.layers} layers, hidden {args.hidden}, ffn {args.intermediate}, heads "
    shape += f"{args.heads}/{args.kv_heads}, vocab {args.vocab}"
    with tempfile.TemporaryDirectory(prefix="rollout_bench_") as work:
        if args.model_dir is not None:
            shape = str(args.model_dir)
        else:
            from megatron_o1p.testing.tiny_models import build_tiny_qwen2

            args.model_dir = build_tiny_qwen2(
                Path(work) / "qwen2", vocab_size=args.vocab, hidden_size=args.hidden,
                intermediate_size=args.intermediate, num_hidden_layers=args.layers,
                num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
            )  # fmt: skip
        from safetensors import safe_open

        with safe_open(str(Path(args.model_dir) / "model.safetensors"), "pt") as f:
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        prompts = _prompts(args.model_dir, args.prompts)
        # HF first: vLLM's CPU worker pins torch's threads and then blocks set_num_threads.
        backends = {"hf": _hf_generator(args, prompts), "vllm": _vllm_generator(args, prompts)}
        threads = torch.get_num_threads()
        for generate, _ in backends.values():
            generate(1, 8)  # warm-up
        runs = {b: [] for b in backends}
        for _ in range(args.repeats):  # interleaved: both see the same machine load
            for b, (generate, _) in backends.items():
                start = time.perf_counter()
                tokens = generate(len(prompts), args.max_tokens)
                runs[b].append((tokens, time.perf_counter() - start))
    n, k, m = args.prompts, args.num_samples, args.max_tokens
    print(
        f"model: Qwen2, {params / 1e6:.1f}M params ({shape}); "
        f"{n} prompts ({min(map(len, prompts))}-{max(map(len, prompts))} tokens) x K={k} x "
        f"{m} tokens, temperature {args.temperature}, top-p {args.top_p}; "
        f"{threads} torch threads, {os.cpu_count()} CPUs"
    )
    print()
    print(f"backend     | dtype    | tokens/run | {'seconds/run: median (each)':<28} | tokens/s")
    print(f"------------|----------|------------|-{'-' * 28}-|---------")
    rate = {}
    for name, b in (("HF generate", "hf"), ("vLLM", "vllm")):
        seconds = statistics.median(s for _, s in runs[b])
        tokens = runs[b][0][0]
        assert all(t == tokens for t, _ in runs[b])
        rate[b] = tokens / seconds
        cell = f"{seconds:6.2f} (" + ", ".join(f"{s:.2f}" for _, s in runs[b]) + ")"
        print(f"{name:<11} | {backends[b][1]:<8} | {tokens:>10} | {cell:<28} | {rate[b]:>8.0f}")
    assert runs["hf"][0][0] == runs["vllm"][0][0], "token counts differ"
    pair = [h / v for (_, h), (_, v) in zip(runs["hf"], runs["vllm"])]
    print()
    print(
        f"vLLM / HF: {rate['vllm'] / rate['hf']:.2f}x (target >= 1.3x); per interleaved pair: "
        + ", ".join(f"{r:.2f}x" for r in pair)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
