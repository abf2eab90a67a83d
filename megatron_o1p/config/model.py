"""ModelConfig: which megatron checkpoint to load and how to build it (spec, dtype, length).

`models/loading.py` reads it: the one path from a checkpoint folder to this rank's model
chunks, used by `o1p train`, `o1p ref-logprobs` and `o1p convert verify`.

Tested by tests/unit/checkpoint/test_verify_config.py and tests/unit/training/test_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.config.choices import SPEC_NAMES
from megatron_o1p.config.flags import Flags, OnOffSwitch, flag, require

# Megatron-LM's --make-vocab-size-divisible-by default. The vocab is padded once, at conversion,
# to a multiple of this, independent of TP: any TP that divides the padded size loads the
# checkpoint (every power of two up to 128 with the default).
DEFAULT_VOCAB_MULTIPLE = 128


@dataclass
class ModelConfig(Flags):
    load: Path = flag(
        help="megatron checkpoint: an `o1p convert hf-to-mcore` output, or an `o1p train "
        "--save` run (a run to resume, for train)"
    )
    spec: str = flag(
        "auto",
        "layer spec: te (Transformer Engine), local (megatron's), auto (te where TE and CUDA "
        "work); checkpoints remap between them",
        choices=SPEC_NAMES,
    )
    bf16: bool = flag(False, "bf16 parameters and compute (default fp32)")
    seq_length: int = flag(4096, "max tokens per sequence, prompt + response")
    pack_sequences: bool = flag(
        True,
        "--pack-sequences, the default: lay whole sequences end to end in micro-batches of at "
        "most --micro-batch-size x --seq-length positions (no padding between them; the same "
        "loss and gradients); --no-pack-sequences pads each micro-batch to its longest row",
        name="--pack-sequences",
        aliases=("--no-pack-sequences",),
        action=OnOffSwitch,
    )
    recompute_activations: bool = flag(
        False, "recompute each layer's activations in the backward (less memory, more time)"
    )

    def __post_init__(self) -> None:
        self.load = Path(self.load)
        require(self.spec in SPEC_NAMES, f"--spec {self.spec!r}: choose one of {SPEC_NAMES}")
        require(self.seq_length >= 1, f"--seq-length must be >= 1, got {self.seq_length}")

    @property
    def dtype_name(self) -> str:
        return "bfloat16" if self.bf16 else "float32"

    def torch_dtype(self):
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32
