"""`o1p` / `python -m megatron_o1p`: the subcommand table and the error boundary.

Each subcommand lives in `megatron_o1p/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`; only the chosen module is imported, so `o1p <cmd> --help` stays fast and
loads neither megatron-core nor vLLM unless the command needs them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from megatron_o1p import __version__
from megatron_o1p.errors import O1pError

# name -> (module, one-line help)
COMMANDS = {
    "convert": (
        "megatron_o1p.commands.convert",
        "HF <-> Megatron checkpoint conversion and the HF parity check",
    ),
    "grade": (
        "megatron_o1p.commands.grade",
        "grade responses: extract the final answer, check it with math-verify",
    ),
    "sample": (
        "megatron_o1p.commands.sample",
        "sample K responses per problem with vLLM into resumable parquet shards",
    ),
    "build-dataset": (
        "megatron_o1p.commands.build_dataset",
        "score graded rollouts (R_LH, eq. 8-10) into the training, SFT and DPO datasets",
    ),
    "analyze": (
        "megatron_o1p.commands.analyze",
        "length-disharmony study (paper sec. 3): accuracy per length interval, CSV and plot",
    ),
    "ref-logprobs": (
        "megatron_o1p.commands.ref_logprobs",
        "reference log-probs of a dataset, computed once (torchrun for several ranks)",
    ),
    "train": (
        "megatron_o1p.commands.train",
        "train with the O1-Pruner, SFT or DPO loss (torchrun for several ranks)",
    ),
    "evaluate": (
        "megatron_o1p.commands.evaluate",
        "accuracy and response length of an HF model on benchmarks (vLLM, graded)",
    ),
    "compare": (
        "megatron_o1p.commands.compare",
        "compare evaluated runs with a baseline: accuracy, length, AES (paper Table 2)",
    ),
    "demo": ("megatron_o1p.commands.demo", "the embedded demo on tiny models (CPU, minutes)"),
}


def _quiet_third_party_warnings() -> None:
    # megatron-core and torch.distributed.checkpoint warn about their own deprecations on
    # every call; they are not actionable for our users.
    for module in ("megatron", "torch.distributed", "transformers"):
        warnings.filterwarnings("ignore", module=module)
    warnings.filterwarnings("ignore", category=FutureWarning)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o1p",
        description="O1-Pruner (length-harmonizing fine-tuning) on megatron-core.",
    )
    parser.add_argument("--version", action="version", version=f"megatron_o1p {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    _quiet_third_party_warnings()
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except O1pError as err:
        print(f"o1p {args.command}: error: {err}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
