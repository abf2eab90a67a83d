#!/usr/bin/env python
"""Peak memory and time of token log-probs + the O1-Pruner loss, forward and backward.

    python benchmarks/logprob_memory.py [--vocab 151936] [--seq 4096] [--hidden 1536]
        [--dtype bfloat16] [--impls naive,native,chunked,chunked+inplace,fused-head]

Batch 1, bf16 as a bf16 model computes, everything in this one process, each row after
resetting the peak-RSS mark. With `--hidden H` (default 1536, R1-Distill-1.5B's) each row starts
where the model's last stage does, from the hidden states [1, seq, H] and the output weight
[V_padded, H], and ends with their gradients:

- naive: the output layer's `hidden @ weight.T`, then `logits.float().log_softmax(-1).gather(...)`
  (what the official code does)
- native: the output layer, then megatron-core's vocab-parallel cross entropy (masked fp32 copy)
- chunked: the output layer, then ours a chunk of rows at a time; `chunked+inplace` also writes
  the logits' gradient over the logits, as the training step does (today's training path)
- fused-head: ours from the hidden states and the weight; the logits never exist
- liger, cce-compile (opt-in in --impls, where installed): liger-kernel's fused linear cross
  entropy (Triton; on the CPU through TRITON_INTERPRET=1, about 4 s per token at V = 151,936)
  and cut-cross-entropy's `impl="torch_compile"` (its CPU fallback, which forms the logits; its
  `cce` Triton kernels fail in the interpreter)
- triton: ours, fused kernels on the logits; timed on a GPU only (`benchmarks/gpu/`)

`--hidden 0` gives the earlier table: the logits exist before the row starts (no output layer,
no fused-head). Memory is the peak RSS above the RSS with the row's inputs allocated (so with
--hidden it includes the weight's gradient, which every row produces: column `-grads` is the
peak less the hidden and weight gradients); time is the best of --repeats runs, wall clock and
process CPU time (the latter less sensitive to other processes on a shared machine). Targets:
chunked peak <= 1/3 of naive and time <= 1.0x naive (logits input); fused-head peak <= 0.1x and
time <= 1.2x of chunked+inplace (hidden input).
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
from megatron_o1p.ops.logprobs import head_token_logprobs, token_logprobs  # noqa: E402

LOGITS_IMPLS = ("naive", "native", "chunked", "chunked+inplace")
HIDDEN_IMPLS = (*LOGITS_IMPLS, "fused-head")
EXTERNAL_IMPLS = ("liger", "cce-compile")


def naive_logprobs(logits, targets, vocab_size):
    logp = logits.float()[..., :vocab_size].log_softmax(-1)
    return logp.gather(-1, targets[..., None]).squeeze(-1)


def logits_logprobs(impl: str, logits, targets, vocab_size: int):
    if impl == "naive":
        return naive_logprobs(logits, targets, vocab_size)
    return token_logprobs(
        logits, targets, vocab_size=vocab_size, impl=impl.split("+")[0],
        inplace_backward=impl.endswith("+inplace"),
    )  # fmt: skip


def external_logprobs(impl: str, hidden, weight, targets, vocab_size: int):
    """-(per-token cross entropy) of the packages that fuse the head, on the unpadded rows."""
    rows, real = hidden.reshape(-1, hidden.shape[-1]), weight[:vocab_size]
    if impl == "liger":
        from liger_kernel.ops.fused_linear_cross_entropy import (
            LigerFusedLinearCrossEntropyFunction,
        )

        nll = LigerFusedLinearCrossEntropyFunction.apply(
            rows, real, targets.reshape(-1), None, None, -100, 0.0, 0.0, "none"
        )[0]
    else:
        from cut_cross_entropy import linear_cross_entropy

        nll = linear_cross_entropy(
            rows, real, targets.reshape(-1), reduction="none", impl="torch_compile"
        )
    return -nll.float().reshape(targets.shape)


def step(impl: str, inputs: dict, targets, batch) -> float:
    vocab_size = batch["vocab_size"]
    if "logits" in inputs:
        logprobs = logits_logprobs(impl, inputs["logits"], targets, vocab_size)
    elif impl == "fused-head":
        logprobs = head_token_logprobs(
            inputs["hidden"], inputs["weight"], targets, vocab_size=vocab_size
        )
    elif impl in EXTERNAL_IMPLS:
        logprobs = external_logprobs(impl, inputs["hidden"], inputs["weight"], targets, vocab_size)
    else:  # the output layer (TP 1: a matmul) makes the logits, then the log-prob kernel
        logits = inputs["hidden"] @ inputs["weight"].t()
        logprobs = logits_logprobs(impl, logits, targets, vocab_size)
        del logits  # autograd (or the in-place backward) owns them now
    loss, _ = length_harmonizing_loss(
        logprobs, batch["ref_logprobs"], batch["advantages"], batch["loss_mask"]
    )
    loss.backward()
    return loss.item()


def measure(impl: str, make_inputs, targets, batch, repeats: int):
    """(peak MiB of the first run, best wall seconds, best process CPU seconds, loss)."""
    times, cpu_times, peak, value = [], [], None, None
    for _ in range(repeats):
        inputs = make_inputs()
        gc.collect()
        reset_peak_rss()
        base = rss_mib()
        start, cpu_start = time.perf_counter(), time.process_time()
        value = step(impl, inputs, targets, batch)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        peak = peak_rss_mib() - base if peak is None else peak
        del inputs
        gc.collect()
    return peak, min(times), min(cpu_times), value


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151936, help="true vocab size")
    parser.add_argument("--seq", type=int, default=4096, help="tokens (batch 1)")
    parser.add_argument("--hidden", type=int, default=1536,
                        help="hidden size: rows start from hidden states and the output weight; "
                        "0 = from the logits (no output layer, no fused-head)")  # fmt: skip
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--impls", default=None,
                        help="comma-separated rows; default: every built-in one for the input "
                        f"(opt-in: {', '.join(EXTERNAL_IMPLS)})")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2, help="runs per row (best time)")
    args = parser.parse_args()
    default = HIDDEN_IMPLS if args.hidden else LOGITS_IMPLS
    args.impls = tuple(args.impls.split(",")) if args.impls else default
    allowed = (*HIDDEN_IMPLS, *EXTERNAL_IMPLS) if args.hidden else LOGITS_IMPLS
    unknown = [i for i in args.impls if i not in allowed]
    if unknown:
        parser.error(f"--impls {unknown}: choose from {', '.join(allowed)} with this --hidden")
    return args


def _inputs(args, padded: int, g: torch.Generator):
    """(make_inputs, description, MiB of the inputs' gradients or 0): fresh leaves per run."""
    dtype = getattr(torch, args.dtype)
    if not args.hidden:
        base = (torch.randn(1, args.seq, padded, generator=g) * 2).to(dtype)
        return (
            lambda: {"logits": base.clone().requires_grad_()},
            f"logits [1, {args.seq}, {padded}] {args.dtype} = {base.nbytes / 2**20:.0f} MiB",
            0.0,
        )
    hidden = torch.randn(1, args.seq, args.hidden, generator=g).to(dtype)
    # Logits of std ~2 as in the logits table: hidden ~N(0, 1), weight ~N(0, 4/H).
    weight = (torch.randn(padded, args.hidden, generator=g) * (2 / args.hidden**0.5)).to(dtype)
    logits_mib = args.seq * padded * dtype.itemsize / 2**20
    return (
        lambda: {
            "hidden": hidden.clone().requires_grad_(),
            "weight": weight.clone().requires_grad_(),
        },
        f"hidden [1, {args.seq}, {args.hidden}] + weight [{padded}, {args.hidden}] "
        f"{args.dtype} ({weight.nbytes / 2**20:.0f} MiB; its gradient is in every peak); the "
        f"logits would be {logits_mib:.0f} MiB",
        (hidden.nbytes + weight.nbytes) / 2**20,
    )


def _print_table(rows: dict, grads_mib: float) -> None:
    """The rows against naive (or the first row); with hidden inputs also `-grads`: the peak
    less the gradients of the hidden states and the weight, which every row must produce."""
    base_name = "naive" if "naive" in rows else next(iter(rows))
    base_peak, base_time, base_cpu, _ = rows[base_name]
    tag = f"x {base_name}"
    w = max(11, len(tag) + 2)
    extra = f"{'-grads':>9}" if grads_mib else ""
    print(f"{'impl':<18}{'peak MiB':>10}{extra}{tag:>{w}}{'seconds':>9}{tag:>{w}}"
          f"{'cpu s':>9}{tag:>{w}}{'loss':>12}")  # fmt: skip
    for impl, (peak, seconds, cpu, value) in rows.items():
        extra = f"{peak - grads_mib:>9.0f}" if grads_mib else ""
        print(f"{impl:<18}{peak:>10.0f}{extra}{peak / base_peak:>{w}.3f}{seconds:>9.2f}"
              f"{seconds / base_time:>{w}.2f}{cpu:>9.2f}{cpu / base_cpu:>{w}.2f}"
              f"{value:>12.6f}")  # fmt: skip
    print(f"{'triton':<18}{'(GPU only: benchmarks/gpu/check.sh)':>40}")
    if not grads_mib and "naive" in rows:
        best = min((k for k in rows if k.startswith("chunked")), key=lambda k: rows[k][0])
        peak, seconds = rows[best][0] / base_peak, rows[best][1] / base_time
        print(f"target: peak <= 0.33 x naive, time <= 1.0 x naive; {best}: "
              f"{peak:.2f} x peak, {seconds:.2f} x time")  # fmt: skip
    if grads_mib and "fused-head" in rows and "chunked+inplace" in rows:
        (peak, seconds, cpu, _), ref = rows["fused-head"], rows["chunked+inplace"]
        less = (peak - grads_mib) / (ref[0] - grads_mib)
        print(f"target: fused-head peak <= 0.1 x chunked+inplace, time <= 1.2 x; fused-head: "
              f"{peak / ref[0]:.3f} x peak ({less:.3f} x less the gradients), "
              f"{seconds / ref[1]:.2f} x time ({cpu / ref[2]:.2f} x CPU time)")  # fmt: skip


def main() -> None:
    args = _parse()
    release_freed_tensors_to_os()
    # native needs megatron's (one-rank) model-parallel state for its TP group
    from megatron_o1p.distributed.initialize import ParallelConfig, initialize

    initialize(ParallelConfig())
    g = torch.Generator().manual_seed(0)
    padded = -(-args.vocab // 128) * 128
    make_inputs, description, grads_mib = _inputs(args, padded, g)
    targets = torch.randint(0, args.vocab, (1, args.seq), generator=g)
    batch = {
        "vocab_size": args.vocab,
        "ref_logprobs": -12.0 + torch.randn(1, args.seq, generator=g),
        "advantages": torch.tensor([0.7]),
        "loss_mask": torch.ones(1, args.seq),
    }
    print(f"{description} (vocab {args.vocab}); torch threads {torch.get_num_threads()}")
    rows = {impl: measure(impl, make_inputs, targets, batch, args.repeats) for impl in args.impls}
    _print_table(rows, grads_mib)


if __name__ == "__main__":
    main()
