#!/usr/bin/env python
"""fused-head log-probs on CUDA against the output layer + chunked: error, time, peak memory.

    python benchmarks/gpu/logprob_fused_head.py [--tokens 16384] [--hidden 1536] [--vocab 151936]
    python benchmarks/gpu/logprob_fused_head.py --device cpu --tokens 64 --hidden 64 --vocab 1000

bf16 hidden states [1, tokens, hidden] and output weight [padded vocab, hidden]; each row runs
log-probs forward and backward (to the hidden states and the weight) with random per-token
gradient weights: `chunked+inplace` makes the logits with the output layer's matmul first (the
training path before fused-head), `fused-head` never forms them. Prints max |logp - fp64| (on
the first 1024 tokens), the median of 5 timed runs (CUDA events) and the peak CUDA memory above
the inputs. Goal (issue 13): fused-head peak <= 0.1x and time <= 1.2x of chunked+inplace.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from megatron_o1p.ops.logprobs import head_token_logprobs, token_logprobs  # noqa: E402


def run(impl, hidden, weight, targets, vocab, grad_weights):
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    if impl == "fused-head":
        logp = head_token_logprobs(h, w, targets, vocab_size=vocab)
    else:
        logp = token_logprobs(h @ w.t(), targets, vocab_size=vocab, inplace_backward=True)
    (logp * grad_weights).sum().backward()
    return logp.detach()


def _time(impl, args, cuda, repeats):
    times, peak = [], float("nan")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start_mem = torch.cuda.memory_allocated()
        start = time.perf_counter()
        run(impl, *args)
        if cuda:
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - start_mem) / 2**20
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    padded = -(-args.vocab // 128) * 128
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, args.tokens, args.hidden, generator=g).bfloat16().to(device)
    weight = (torch.randn(padded, args.hidden, generator=g) * 2 / args.hidden**0.5).bfloat16()
    weight = weight.to(device)
    targets = torch.randint(0, args.vocab, (1, args.tokens), generator=g).to(device)
    grad_weights = torch.randn(1, args.tokens, generator=g).to(device)
    part = slice(0, min(args.tokens, 1024))
    logits = (hidden[:, part].double() @ weight.double().t())[..., : args.vocab]
    reference = logits.log_softmax(-1).gather(-1, targets[:, part, None])[..., 0]
    del logits
    name = torch.cuda.get_device_name() if cuda else "cpu"
    logits_mib = args.tokens * padded * 2 / 2**20
    print(f"device {name}; hidden [1, {args.tokens}, {args.hidden}] weight [{padded}, "
          f"{args.hidden}] bf16; logits would be {logits_mib:.0f} MiB")  # fmt: skip
    print(f"{'impl':<17}{'max|err|':>10}{'ms':>10}{'peak MiB':>10}")
    rows = {}
    inputs = (hidden, weight, targets, args.vocab, grad_weights)
    for impl in ("chunked+inplace", "fused-head"):
        err = (run(impl, *inputs)[:, part].double() - reference).abs().max().item()
        seconds, peak = _time(impl, inputs, cuda, args.repeats)
        rows[impl] = (seconds, peak)
        print(f"{impl:<17}{err:>10.2e}{seconds * 1e3:>10.1f}{peak:>10.0f}")
    (t_f, p_f), (t_c, p_c) = rows["fused-head"], rows["chunked+inplace"]
    print(f"fused-head / chunked+inplace: peak {p_f / p_c:.3f} x, time {t_f / t_c:.2f} x "
          "(goal <= 0.1 x, <= 1.2 x)")  # fmt: skip


if __name__ == "__main__":
    main()
