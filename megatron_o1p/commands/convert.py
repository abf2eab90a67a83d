"""`o1p convert {hf-to-mcore, mcore-to-hf, verify}`: flags -> config -> stage function.

hf-to-mcore takes --spec from ModelConfig and the TP/PP sizes from ParallelConfig (it checks
that the layout you plan to train with divides the model); verify composes VerifyConfig. The
flags only these actions have are on `checkpoint/convert_config.py`'s configs; torch is
imported in `run` only.
"""

from __future__ import annotations

import argparse
import sys

from megatron_o1p.checkpoint.convert_config import HfToMcoreConfig, McoreToHfConfig
from megatron_o1p.checkpoint.verify_config import UNUSED_FLAGS as VERIFY_UNUSED_FLAGS
from megatron_o1p.checkpoint.verify_config import VerifyConfig
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.config.parallel import ParallelConfig

_LAYOUT_SIZES = (
    "tensor_model_parallel_size",
    "pipeline_model_parallel_size",
    "expert_model_parallel_size",
)
_VERIFY_SEQ_LENGTH = 64  # a short test batch, not a training length


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)

    to_mcore = actions.add_parser("hf-to-mcore", help="HF folder -> megatron dist checkpoint")
    HfToMcoreConfig.add_arguments(to_mcore)
    ModelConfig.add_arguments(to_mcore, only=("spec",))
    ParallelConfig.add_arguments(to_mcore, only=_LAYOUT_SIZES)

    to_hf = actions.add_parser("mcore-to-hf", help="megatron dist checkpoint -> HF folder")
    McoreToHfConfig.add_arguments(to_hf)

    check = actions.add_parser("verify", help="HF vs megatron logits/log-probs on one batch")
    VerifyConfig.add_arguments(check, skip=VERIFY_UNUSED_FLAGS)
    check.set_defaults(seq_length=_VERIFY_SEQ_LENGTH)


def run(args: argparse.Namespace) -> int:
    if args.action == "hf-to-mcore":
        return _run_hf_to_mcore(args)
    if args.action == "mcore-to-hf":
        return _run_mcore_to_hf(args)
    return _run_verify(args)


def _run_hf_to_mcore(args: argparse.Namespace) -> int:
    from megatron_o1p.checkpoint.convert import hf_to_mcore

    layout = ParallelConfig.from_args(args)
    cfg = HfToMcoreConfig.from_args(
        args,
        spec=args.spec,
        tensor_model_parallel_size=layout.tensor_model_parallel_size,
        pipeline_model_parallel_size=layout.pipeline_model_parallel_size,
        expert_model_parallel_size=layout.expert_model_parallel_size,
    )
    out = hf_to_mcore(cfg, progress=_tick("hf-to-mcore"))
    print(f"o1p convert: wrote megatron checkpoint {out}", flush=True)
    return 0


def _run_mcore_to_hf(args: argparse.Namespace) -> int:
    from megatron_o1p.checkpoint.convert import mcore_to_hf

    out = mcore_to_hf(McoreToHfConfig.from_args(args), progress=_tick("mcore-to-hf"))
    print(f"o1p convert: wrote HF model {out}", flush=True)
    return 0


def _tick(description: str):
    """A tqdm bar over converted parameters (shown on a terminal only)."""
    from tqdm import tqdm

    return tqdm(desc=description, unit="param", file=sys.stderr, disable=not sys.stderr.isatty())


def _run_verify(args: argparse.Namespace) -> int:
    from megatron_o1p.checkpoint.verify import verify
    from megatron_o1p.distributed.initialize import print0, shutdown

    model = ModelConfig.from_args(args, load=args.mcore_dir)
    cfg = VerifyConfig.from_args(args, model=model)
    result = verify(cfg)
    verdict = "PASS" if result.passed else "FAIL"
    parallel = cfg.parallel
    ep = parallel.expert_model_parallel_size
    fewest, experts = result.fewest_expert_tokens, ""
    if fewest is not None:  # a mixture of experts
        experts = f", fewest tokens routed to an expert = {fewest}"
        if fewest == 0:
            experts += " (an idle expert is untested: raise --micro-batch-size)"
    print0(
        f"verify: TP={parallel.tensor_model_parallel_size} "
        f"PP={parallel.pipeline_model_parallel_size}{f' EP={ep}' if ep > 1 else ''} "
        f"{'bf16' if cfg.model.bf16 else 'fp32'} tokens {result.shape[0]}x{result.shape[1]}: "
        f"max |logit diff| = {result.max_logit_diff:.3e}, "
        f"max |logprob diff| = {result.max_logprob_diff:.3e}{experts} "
        f"(tolerance {result.tolerance:.2g}): {verdict}"
    )
    shutdown()
    return 0 if result.passed else 1
