"""`o1p convert {hf-to-mcore, mcore-to-hf, verify}`: flags -> config -> stage function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from megatron_o1p.models.hf_config import DEFAULT_VOCAB_MULTIPLE


def _parallel_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tensor-model-parallel-size", type=int, default=1)
    parser.add_argument("--pipeline-model-parallel-size", type=int, default=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)

    to_mcore = actions.add_parser("hf-to-mcore", help="HF folder -> megatron dist checkpoint")
    to_mcore.add_argument("--hf-dir", type=Path, required=True)
    to_mcore.add_argument("--out", type=Path, required=True)
    to_mcore.add_argument(
        "--spec",
        choices=("auto", "te", "local"),
        default="auto",
        help="layer spec recorded in the checkpoint (auto: te when TE+CUDA work)",
    )
    _parallel_flags(to_mcore)
    to_mcore.add_argument(
        "--make-vocab-size-divisible-by", type=int, default=DEFAULT_VOCAB_MULTIPLE
    )
    to_mcore.add_argument(
        "--allow-bin-weights",
        action="store_true",
        help="accept pytorch_model*.bin (torch.load with weights_only=True)",
    )
    to_mcore.add_argument("--overwrite", action="store_true")

    to_hf = actions.add_parser("mcore-to-hf", help="megatron dist checkpoint -> HF folder")
    to_hf.add_argument("--mcore-dir", type=Path, required=True)
    to_hf.add_argument("--out", type=Path, required=True)
    to_hf.add_argument("--max-shard-size", default="2GB")
    to_hf.add_argument("--overwrite", action="store_true")

    check = actions.add_parser("verify", help="HF vs megatron logits/log-probs on one batch")
    check.add_argument("--hf-dir", type=Path, required=True)
    check.add_argument("--mcore-dir", type=Path, required=True)
    _parallel_flags(check)
    check.add_argument("--num-layers-per-virtual-pipeline-stage", type=int, default=None)
    check.add_argument("--sequence-parallel", action="store_true")
    check.add_argument("--spec", choices=("auto", "te", "local"), default="auto")
    check.add_argument("--bf16", action="store_true", help="run both models in bf16")
    check.add_argument("--seq-length", type=int, default=64)
    check.add_argument("--micro-batch-size", type=int, default=2)
    check.add_argument("--seed", type=int, default=1234)
    check.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="max |diff| allowed (default 1e-4 fp32, 0.15 bf16)",
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "hf-to-mcore":
        from megatron_o1p.checkpoint.convert import HfToMcoreConfig, hf_to_mcore

        out = hf_to_mcore(
            HfToMcoreConfig(
                hf_dir=args.hf_dir,
                out=args.out,
                spec=args.spec,
                tensor_model_parallel_size=args.tensor_model_parallel_size,
                pipeline_model_parallel_size=args.pipeline_model_parallel_size,
                make_vocab_size_divisible_by=args.make_vocab_size_divisible_by,
                allow_bin_weights=args.allow_bin_weights,
                overwrite=args.overwrite,
            ),
            progress=_tick("hf-to-mcore"),
        )
        print(f"o1p convert: wrote megatron checkpoint {out}", flush=True)
        return 0
    if args.action == "mcore-to-hf":
        from megatron_o1p.checkpoint.convert import McoreToHfConfig, mcore_to_hf

        out = mcore_to_hf(
            McoreToHfConfig(
                mcore_dir=args.mcore_dir,
                out=args.out,
                max_shard_size=args.max_shard_size,
                overwrite=args.overwrite,
            ),
            progress=_tick("mcore-to-hf"),
        )
        print(f"o1p convert: wrote HF model {out}", flush=True)
        return 0
    return _run_verify(args)


def _tick(description: str):
    """A tqdm bar over converted parameters (shown on a terminal only)."""
    from tqdm import tqdm

    return tqdm(desc=description, unit="param", file=sys.stderr, disable=not sys.stderr.isatty())


def _run_verify(args: argparse.Namespace) -> int:
    from megatron_o1p.checkpoint.verify import VerifyConfig, verify
    from megatron_o1p.distributed.initialize import print0, shutdown

    vpp = None
    if args.num_layers_per_virtual_pipeline_stage:
        from megatron_o1p.checkpoint.dist import read_checkpoint_meta

        layers = read_checkpoint_meta(args.mcore_dir)["architecture"]["num_layers"]
        per_stage = args.num_layers_per_virtual_pipeline_stage
        vpp = layers // (args.pipeline_model_parallel_size * per_stage)
    cfg = VerifyConfig(
        hf_dir=args.hf_dir,
        mcore_dir=args.mcore_dir,
        tensor_model_parallel_size=args.tensor_model_parallel_size,
        pipeline_model_parallel_size=args.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=vpp,
        sequence_parallel=args.sequence_parallel,
        spec=args.spec,
        params_dtype=torch.bfloat16 if args.bf16 else torch.float32,
        batch_size=args.micro_batch_size,
        seq_length=args.seq_length,
        seed=args.seed,
        tolerance=args.tolerance,
    )
    result = verify(cfg)
    verdict = "PASS" if result.passed else "FAIL"
    print0(
        f"verify: TP={cfg.tensor_model_parallel_size} PP={cfg.pipeline_model_parallel_size} "
        f"{'bf16' if args.bf16 else 'fp32'} tokens {result.shape[0]}x{result.shape[1]}: "
        f"max |logit diff| = {result.max_logit_diff:.3e}, "
        f"max |logprob diff| = {result.max_logprob_diff:.3e} "
        f"(tolerance {result.tolerance:.2g}): {verdict}"
    )
    shutdown()
    return 0 if result.passed else 1
