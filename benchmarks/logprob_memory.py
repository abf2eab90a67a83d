#!/usr/bin/env python
"""Peak memory and time of token log-probs + the O1-Pruner loss, forward and backward.

    python benchmarks/logprob_memory.py [--vocab 151936] [--seq 4096] [--dtype bfloat16]

At Qwen's vocabulary (V = 151,936), seq 4096, batch 1, bf16 logits as a bf16 model produces
them, runs in this one process, each after resetting the peak-RSS mark:

- naive: `logits.float().log_softmax(-1).gather(...)` (what the official code does)
- native: megatron-core's vocab-parallel cross entropy (on a masked fp32 copy)
- chunked: ours, a chunk of rows at a time; `chunked+inplace` also writes the gradient over the
  logits, as the training step does
- triton: ours, fused kernels; timed on a GPU only (`benchmarks/gpu/`), skipped on the CPU

Target (CPU): peak <= 1/3 of naive and time <= 1.0x naive. Memory is the peak RSS above the
RSS with the logits already allocated; time is the best of --repeats runs.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from megatron_o1p.losses import length_harmonizing_loss  # noqa: E402
from megatron_o1p.memory import (  # noqa: E402
    peak_rss_mib,
    release_freed_tensors_to_os,
    reset_peak_rss,
    rss_mib,
)
from megatron_o1p.ops.logprobs import token_logprobs  # noqa: E402


def naive_logprobs(logits, targets, vocab_size):
    logp = logits.float()[..., :vocab_size].log_softmax(-1)
    return logp.gather(-1, targets[..., None]).squeeze(-1)


def step(impl: str, logits, targets, batch):
    if impl == "naive":
        logprobs = naive_logprobs(logits, targets, batch["vocab_size"])
    else:
        logprobs = token_logprobs(
            logits, targets, vocab_size=batch["vocab_size"], impl=impl.split("+")[0],
            inplace_backward=impl.endswith("+inplace"),
        )  # fmt: skip
    loss, _ = length_harmonizing_loss(
        logprobs, batch["ref_logprobs"], batch["advantages"], batch["loss_mask"]
    )
    loss.backward()
    return loss.item()


def measure(impl: str, make_logits, targets, batch, repeats: int):
    times, peak, value = [], None, None
    for _ in range(repeats):
        logits = make_logits()
        gc.collect()
        reset_peak_rss()
        base = rss_mib()
        start = time.perf_counter()
        value = step(impl, logits, targets, batch)
        times.append(time.perf_counter() - start)
        peak = peak_rss_mib() - base if peak is None else peak
        del logits
        gc.collect()
    return peak, min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    release_freed_tensors_to_os()
    # native needs megatron's (one-rank) model-parallel state for its TP group
    from megatron_o1p.distributed.initialize import ParallelConfig, initialize

    initialize(ParallelConfig())
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    padded = -(-args.vocab // 128) * 128
    base_logits = (torch.randn(1, args.seq, padded, generator=g) * 2).to(dtype)
    targets = torch.randint(0, args.vocab, (1, args.seq), generator=g)
    batch = {
        "vocab_size": args.vocab,
        "ref_logprobs": -12.0 + torch.randn(1, args.seq, generator=g),
        "advantages": torch.tensor([0.7]),
        "loss_mask": torch.ones(1, args.seq),
    }

    def make_logits():
        return base_logits.clone().requires_grad_()

    logits_mib = base_logits.nbytes / 2**20
    print(f"logits [1, {args.seq}, {padded}] {args.dtype} = {logits_mib:.0f} MiB "
          f"(vocab {args.vocab}); torch threads {torch.get_num_threads()}")  # fmt: skip
    rows = {}
    for impl in ("naive", "native", "chunked", "chunked+inplace"):
        rows[impl] = measure(impl, make_logits, targets, batch, args.repeats)
    naive_peak, naive_time, naive_value = rows["naive"]
    print(f"{'impl':<18}{'peak MiB':>10}{'x naive':>9}{'seconds':>9}{'x naive':>9}{'loss':>12}")
    for impl, (peak, seconds, value) in rows.items():
        print(f"{impl:<18}{peak:>10.0f}{peak / naive_peak:>9.2f}{seconds:>9.2f}"
              f"{seconds / naive_time:>9.2f}{value:>12.6f}")  # fmt: skip
    print(f"{'triton':<18}{'(GPU only: benchmarks/gpu/check.sh)':>40}")
    best = min(("chunked", "chunked+inplace"), key=lambda k: rows[k][0])
    print(
        f"target: peak <= 0.33 x naive, time <= 1.0 x naive; {best}: "
        f"{rows[best][0] / naive_peak:.2f} x peak, {rows[best][1] / naive_time:.2f} x time"
    )


if __name__ == "__main__":
    main()
