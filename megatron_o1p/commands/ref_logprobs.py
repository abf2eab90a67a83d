"""`o1p ref-logprobs`: flags -> RefLogprobsConfig -> training/ref_logprobs (torchrun-able)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--load", type=Path, required=True, help="the reference (initial) checkpoint")
    add("--data", type=Path, required=True, help="dataset from build-dataset (sft/dpo files too)")
    add("--out", type=Path, default=None, help="default: rewrite --data in place (atomically)")
    add("--tensor-model-parallel-size", type=int, default=1)
    add("--pipeline-model-parallel-size", type=int, default=1)
    add("--micro-batch-size", type=int, default=4)
    add("--seq-length", type=int, default=4096, help="use the same value as for `o1p train`")
    add("--bf16", action="store_true")
    add("--logprob-impl", choices=("chunked", "native", "triton"), default="chunked")
    add("--rollouts", type=Path, default=None, help="sampled shards: report the mismatch")
    add("--mismatch-threshold", type=float, default=0.1)
    add("--spec", choices=("auto", "te", "local"), default="auto")


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.distributed.initialize import print0, shutdown
    from megatron_o1p.training.ref_logprobs import RefLogprobsConfig, compute_ref_logprobs

    fields = {k: v for k, v in vars(args).items() if k != "command"}
    summary = compute_ref_logprobs(RefLogprobsConfig(**fields))
    print0(f"ref-logprobs: {summary['rows']} rows -> {summary['out']}")
    if "mismatch_mean_abs" in summary:
        print0(
            f"rollout/logprob_mismatch: mean |ref - sampler| per token = "
            f"{summary['mismatch_mean_abs']:.4f} over {summary['matched_rows']} sequences; "
            f"{100 * summary['mismatch_frac_above']:.1f}% of sequences above "
            f"{args.mismatch_threshold}"
        )
    shutdown()
    return 0
