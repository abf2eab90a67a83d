"""The folder layout of an o1p megatron checkpoint, shared by its writers and its reader.

A checkpoint folder M (Megatron-LM's tracker convention):

    M/o1p_checkpoint.json            architecture, spec, padded vocab, sharding metadata
    M/hf/                            the source config.json, generation config, tokenizer files
    M/latest_checkpointed_iteration.txt   "release" (conversion) or the last iteration
    M/release/ or M/iter_0000100/    megatron torch_dist: .metadata, *.distcp, common.pt,
                                     metadata.json

Tensors are stored as full, unsharded per-layer tensors keyed by megatron's own sharded keys
(`decoder.layers.{i}.self_attention.linear_qkv.weight`, ...), so megatron's resharding load
reads them at ANY tensor/pipeline parallel size.

Who writes what: `checkpoint/conversion_writer.py` streams a converted model into `release/`,
`checkpoint/saving.py` saves training state into `iter_XXXXXXX/` (the tracker is its commit
point), and `checkpoint/reader.py` reads both. This module imports neither torch nor megatron.
"""

from __future__ import annotations

from pathlib import Path

from megatron_o1p.atomic import write_json, write_text

CHECKPOINT_META = "o1p_checkpoint.json"
TRACKER = "latest_checkpointed_iteration.txt"
RELEASE = "release"
"""The tracker value and folder name of a conversion output (no training iteration)."""
FORMAT_VERSION = 1
"""Version of `o1p_checkpoint.json` and this layout; the reader refuses any other."""

# Per-layer keys (`decoder.layers.{i}.`) rather than one stacked [num_layers, ...] tensor per
# parameter: readable, and where megatron-core is heading (its TODO drops the stacked form).
# NOTE: megatron adds process groups into the dict it is given: always pass a fresh copy.
_SHARDING_METADATA = {"non_homogeneous_layers": True, "singleton_local_shards": False}


def sharding_metadata() -> dict:
    """The `metadata` argument for every `sharded_state_dict()` call (a fresh dict)."""
    return dict(_SHARDING_METADATA)


def iteration_folder_name(iteration: int | str) -> str:
    """`iter_0000100` for iteration 100; `release` for a conversion."""
    return RELEASE if iteration == RELEASE else f"iter_{int(iteration):07d}"


def model_sharded_state(model_chunks: list) -> dict:
    """The sharded state dict of this rank's model chunks (one chunk, or model0, model1, ...)."""
    if len(model_chunks) == 1:
        return model_chunks[0].sharded_state_dict(metadata=sharding_metadata())
    return {
        f"model{i}": chunk.sharded_state_dict(metadata=sharding_metadata())
        for i, chunk in enumerate(model_chunks)
    }


def write_checkpoint_meta(ckpt_dir: Path, meta: dict) -> None:
    """Write `o1p_checkpoint.json` atomically (temporary name, fsync, rename, fsync of folder)."""
    write_json(Path(ckpt_dir) / CHECKPOINT_META, meta)


def write_tracker(ckpt_dir: Path, iteration: int | str) -> None:
    """Name `iteration` (or "release") in the tracker file, atomically: the commit point."""
    write_text(Path(ckpt_dir) / TRACKER, f"{iteration}\n")
