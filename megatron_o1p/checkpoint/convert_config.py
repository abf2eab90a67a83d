"""The configs of `o1p convert hf-to-mcore` and `mcore-to-hf`, with their own flags.

Kept apart from `checkpoint/convert.py` (which imports torch) so that `o1p convert --help`
stays torch-free. hf-to-mcore's --spec and TP/PP/EP sizes are flags of ModelConfig and
ParallelConfig: the command passes them in as plain fields.

Tested by tests/unit/commands/test_convert.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.config.choices import SPEC_NAMES
from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.config.model import DEFAULT_VOCAB_MULTIPLE


@dataclass
class HfToMcoreConfig(Flags):
    hf_dir: Path = shared("hf_dir", "HF model folder to convert")
    out: Path = shared("out", "megatron checkpoint folder to write")
    spec: str = "auto"
    """Layer spec recorded in the checkpoint: te, local or auto (te when TE+CUDA work)."""
    tensor_model_parallel_size: int = 1
    """The TP size you plan to train with: checked against the model, not used to shard."""
    pipeline_model_parallel_size: int = 1
    expert_model_parallel_size: int = 1
    make_vocab_size_divisible_by: int = flag(
        DEFAULT_VOCAB_MULTIPLE, "pad the vocab to a multiple of this (Megatron-LM's flag)"
    )
    allow_bin_weights: bool = flag(
        False, "accept pytorch_model*.bin (torch.load with weights_only=True)"
    )
    overwrite: bool = shared("overwrite", "replace an existing --out folder", default=False)

    def __post_init__(self):
        self.hf_dir, self.out = Path(self.hf_dir), Path(self.out)
        require(
            self.spec in SPEC_NAMES,
            f"unknown --spec {self.spec!r}; choose one of {', '.join(SPEC_NAMES)}",
        )


@dataclass
class McoreToHfConfig(Flags):
    mcore_dir: Path = shared("mcore_dir", "megatron checkpoint to convert back")
    out: Path = shared("out", "HF model folder to write")
    max_shard_size: str = flag(
        "2GB", "largest safetensors file written, e.g. 500MB or 2GB", metavar="SIZE"
    )
    overwrite: bool = shared("overwrite", "replace an existing --out folder", default=False)

    def __post_init__(self):
        self.mcore_dir, self.out = Path(self.mcore_dir), Path(self.out)
