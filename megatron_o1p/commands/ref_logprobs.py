"""`o1p ref-logprobs`: flags -> RefLogprobsConfig -> training/ref_logprobs (torchrun-able).

Tested by tests/unit/training/test_ref_logprobs_config.py and
tests/distributed/test_ref_logprobs.py.
"""

from __future__ import annotations

import argparse

from megatron_o1p.config.loss import LossConfig
from megatron_o1p.training.ref_logprobs_config import UNUSED_FLAGS, RefLogprobsConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    RefLogprobsConfig.add_arguments(parser, skip=UNUSED_FLAGS)
    LossConfig.add_arguments(parser, only=("logprob_impl",))


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.distributed.initialize import print0, shutdown
    from megatron_o1p.training.ref_logprobs import compute_ref_logprobs

    cfg = RefLogprobsConfig.from_args(args, logprob_impl=args.logprob_impl)
    summary = compute_ref_logprobs(cfg)
    print0(f"ref-logprobs: {summary['rows']} rows -> {summary['out']}")
    if "mismatch_mean_abs" in summary:
        print0(
            f"rollout/logprob_mismatch: mean |ref - sampler| per token = "
            f"{summary['mismatch_mean_abs']:.4f} over {summary['matched_rows']} sequences; "
            f"{100 * summary['mismatch_frac_above']:.1f}% of sequences above "
            f"{cfg.mismatch_threshold}"
        )
    shutdown()
    return 0
