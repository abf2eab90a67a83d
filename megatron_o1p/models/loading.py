"""The one path from a megatron checkpoint folder to this rank's model chunks.

    checkpoint = read_checkpoint(model_cfg.load)            # preflight: no collective yet
    state = initialize_for(checkpoint, parallel_cfg, seed)  # process groups, VPP derived
    chunks = build_model(checkpoint, model_cfg, state)      # GPTModel chunk(s), random init
    load_weights(chunks, checkpoint)                        # the checkpoint's weights

`load_model` chains the last three for the forward-only stages (`o1p ref-logprobs`, `o1p convert
verify`); `o1p train` calls them one by one, because it wraps the chunks (DDP, optimizer) before
it loads either the weights or a run to resume.

Tested by tests/unit/checkpoint/test_reader.py and tests/distributed/test_ref_logprobs.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.checkpoint.reader import load_into_model, read_checkpoint_meta
from megatron_o1p.config.model import ModelConfig
from megatron_o1p.config.parallel import ParallelConfig
from megatron_o1p.models.hf_config import ModelArchitecture


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint folder says about its model, read without building anything."""

    path: Path
    meta: dict
    """`o1p_checkpoint.json` (see `checkpoint/layout.py`)."""
    arch: ModelArchitecture

    @property
    def padded_vocab_size(self) -> int:
        return self.meta["padded_vocab_size"]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint's metadata; raises CheckpointError for a folder that is not one."""
    meta = read_checkpoint_meta(path)
    return Checkpoint(Path(path), meta, ModelArchitecture.from_json(meta["architecture"]))


def initialize_for(checkpoint: Checkpoint, parallel: ParallelConfig, *, seed: int = 1234):
    """Start the process groups for `parallel`, its virtual-pipeline size derived for this
    model; returns the `ParallelState`."""
    from megatron_o1p.distributed.initialize import initialize

    return initialize(parallel.for_model(checkpoint.arch.num_layers), seed=seed)


def build_model(checkpoint: Checkpoint, model: ModelConfig, state) -> list:
    """This rank's GPTModel chunk(s) for the checkpoint's architecture (weights not loaded)."""
    from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
    from megatron_o1p.models.specs import resolve_spec_name

    options = ModelOptions(
        spec=resolve_spec_name(model.spec),
        padded_vocab_size=checkpoint.padded_vocab_size,
        params_dtype=model.torch_dtype(),
        seq_length=model.seq_length,
        recompute_activations=model.recompute_activations,
    )
    return build_gpt_chunks(checkpoint.arch, state, options)


def load_weights(chunks: list, checkpoint: Checkpoint) -> None:
    """Load the checkpoint's weights into the chunks (any TP/PP/VPP layout)."""
    load_into_model(chunks, checkpoint.path)


def load_model(checkpoint: Checkpoint, model: ModelConfig, state, *, eval_mode: bool = True):
    """Build this rank's chunks and load the checkpoint's weights into them."""
    chunks = build_model(checkpoint, model, state)
    load_weights(chunks, checkpoint)
    if eval_mode:
        for chunk in chunks:
            chunk.eval()
    return chunks
