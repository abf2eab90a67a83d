"""Read an o1p megatron checkpoint (layout in `checkpoint/layout.py`).

Two ways in:

- `load_into_model` / `load_tensors`: megatron's resharding `dist_checkpointing.load`, into the
  model chunks of this rank at any TP/PP/VPP (train, ref-logprobs, verify).
- `GlobalTensorReader`: whole global tensors one at a time, without megatron and without
  preallocating a target (mcore-to-hf conversion; tests comparing saved weights).

`read_checkpoint_meta` is the preflight every stage runs first: it checks the folder is a
complete checkpoint of this format version before any model is built or collective is entered.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from megatron_o1p.checkpoint.layout import (
    CHECKPOINT_META,
    FORMAT_VERSION,
    TRACKER,
    iteration_folder_name,
    model_sharded_state,
)
from megatron_o1p.errors import CheckpointError


def resolve_iteration_dir(ckpt_dir: str | Path) -> Path:
    """The torch_dist folder of a checkpoint: via the tracker file, else the folder itself."""
    ckpt_dir = Path(ckpt_dir)
    tracker = ckpt_dir / TRACKER
    if tracker.is_file():
        return ckpt_dir / iteration_folder_name(tracker.read_text().strip())
    return ckpt_dir


def tracked_iteration(ckpt_dir: str | Path) -> int | None:
    """The iteration the tracker file names (None: no tracker, or a conversion's "release")."""
    tracker = Path(ckpt_dir) / TRACKER
    if not tracker.is_file():
        return None
    value = tracker.read_text().strip()
    return int(value) if value.isdigit() else None


def read_checkpoint_meta(ckpt_dir: str | Path) -> dict:
    """`o1p_checkpoint.json` of a complete checkpoint.

    Raises:
        CheckpointError: the file is missing or of another format version, or the tracked
            torch_dist folder lacks its metadata (an interrupted write).
    """
    path = Path(ckpt_dir) / CHECKPOINT_META
    if not path.is_file():
        raise CheckpointError(
            f"{path}: not found; --mcore-dir must be a folder written by `o1p convert hf-to-mcore` "
            "or `o1p train --save`"
        )
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {meta.get('format_version')} is not "
            f"{FORMAT_VERSION}; reconvert with this version of o1p"
        )
    iteration_dir = resolve_iteration_dir(ckpt_dir)
    if (
        not (iteration_dir / "metadata.json").is_file()
        or not (iteration_dir / ".metadata").is_file()
    ):
        raise CheckpointError(
            f"{iteration_dir}: incomplete megatron checkpoint (metadata missing); "
            "reconvert or point --load at a complete one"
        )
    return meta


def stored_keys(iteration_dir: Path) -> dict:
    """{fqn: storage metadata} of a torch_dist checkpoint."""
    from torch.distributed.checkpoint import FileSystemReader

    return FileSystemReader(str(iteration_dir)).read_metadata().state_dict_metadata


def _drop_absent_objects(sharded_state_dict: dict, present: dict) -> list[str]:
    """Remove ShardedObjects (extra state) the checkpoint lacks, e.g. TE's `core_attention`
    extra state when a local-spec checkpoint loads into the TE spec. Returns their names."""
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    dropped = []
    for name in list(sharded_state_dict):
        value = sharded_state_dict[name]
        if isinstance(value, dict):
            dropped += _drop_absent_objects(value, present)
        elif isinstance(value, ShardedObject) and value.unique_key not in present:
            del sharded_state_dict[name]
            dropped.append(name)
    return dropped


def load_tensors(iteration_dir: Path, sharded_state_dict: dict) -> dict:
    """megatron `dist_checkpointing.load` of a (partial) sharded state dict."""
    from megatron.core import dist_checkpointing

    _drop_absent_objects(sharded_state_dict, stored_keys(iteration_dir))
    return dist_checkpointing.load(sharded_state_dict, str(iteration_dir))


def load_into_model(model_chunks: list, ckpt_dir: str | Path) -> None:
    """Load a checkpoint's weights into this rank's model chunks (any TP/PP/VPP).

    Raises:
        CheckpointError: the checkpoint lacks parameters of these chunks.
    """
    iteration_dir = resolve_iteration_dir(ckpt_dir)
    loaded = load_tensors(iteration_dir, model_sharded_state(model_chunks))
    if len(model_chunks) == 1:
        loaded = {"model0": loaded}
    for i, chunk in enumerate(model_chunks):
        result = chunk.load_state_dict(loaded[f"model{i}"], strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("_extra_state")]
        if missing:
            raise CheckpointError(
                f"{iteration_dir}: checkpoint lacks {missing[:3]} "
                f"({len(missing)} in all); was it written for this model?"
            )


class _FileSlice(io.RawIOBase):
    """A read-only, seekable window [offset, offset+length) of an open file."""

    def __init__(self, handle, offset: int, length: int):
        self._handle, self._start, self._length, self._pos = handle, offset, length, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + pos))
        return self._pos

    def readinto(self, buffer):
        count = min(len(buffer), self._length - self._pos)
        if count <= 0:
            return 0
        self._handle.seek(self._start + self._pos)
        got = self._handle.readinto(memoryview(buffer)[:count])
        self._pos += got
        return got


class GlobalTensorReader:
    """Reads whole global tensors of a torch_dist checkpoint, one at a time.

    Unlike a megatron load (which copies each stored chunk into a preallocated target), a tensor
    stored as one chunk is returned as loaded, so peak memory is one copy of the largest tensor.
    Tensors stored in TP shards (checkpoints saved during training) are assembled by offset.
    """

    def __init__(self, iteration_dir: Path):
        from torch.distributed.checkpoint import FileSystemReader

        self.iteration_dir = Path(iteration_dir)
        try:
            self.metadata = FileSystemReader(str(iteration_dir)).read_metadata()
        except FileNotFoundError as err:
            raise CheckpointError(f"{iteration_dir}: no .metadata; incomplete checkpoint") from err

    def shape_dtype(self, key: str) -> tuple[tuple[int, ...], torch.dtype]:
        """(global shape, dtype) of tensor `key`, read from the metadata only."""
        md = self.metadata.state_dict_metadata.get(key)
        if md is None or not hasattr(md, "chunks"):
            raise CheckpointError(
                f"{self.iteration_dir}: tensor {key} missing; incomplete checkpoint"
            )
        return tuple(md.size), md.properties.dtype

    def _load_chunk(self, key: str, offsets) -> torch.Tensor:
        from torch.distributed.checkpoint.metadata import MetadataIndex

        info = self.metadata.storage_data[MetadataIndex(key, torch.Size(offsets))]
        if info.transform_descriptors:
            raise CheckpointError(
                f"{self.iteration_dir}: {key} is stored with transforms "
                f"{info.transform_descriptors}, which this reader does not handle"
            )
        with open(self.iteration_dir / info.relative_path, "rb") as handle:
            window = io.BufferedReader(_FileSlice(handle, info.offset, info.length))
            return torch.load(window, map_location="cpu", weights_only=True)

    def read(self, key: str) -> torch.Tensor:
        """The whole global tensor `key` (CPU), its stored chunks assembled by offset."""
        shape, _ = self.shape_dtype(key)
        return self.read_region(key, (0,) * len(shape), shape)

    def read_region(self, key: str, offsets, sizes) -> torch.Tensor:
        """The block of global tensor `key` at `offsets` of `sizes` (CPU): one stored chunk as
        loaded when it is exactly that block, else assembled from the chunks it overlaps. A
        MoE layer's experts are one global tensor [experts, ...]; each expert is such a block."""
        shape, dtype = self.shape_dtype(key)
        offsets, sizes = tuple(offsets), tuple(sizes)
        chunks = self.metadata.state_dict_metadata[key].chunks
        for chunk in chunks:
            if tuple(chunk.offsets) == offsets and tuple(chunk.sizes) == sizes:
                return self._load_chunk(key, chunk.offsets).reshape(sizes)
        block = torch.empty(sizes, dtype=dtype)
        for chunk in chunks:
            overlap = [
                (max(o, co), min(o + n, co + cn))
                for o, n, co, cn in zip(offsets, sizes, chunk.offsets, chunk.sizes)
            ]
            if any(lo >= hi for lo, hi in overlap):
                continue
            data = self._load_chunk(key, chunk.offsets).reshape(tuple(chunk.sizes))
            source = tuple(slice(lo - co, hi - co) for (lo, hi), co in zip(overlap, chunk.offsets))
            target = tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(overlap, offsets))
            block[target] = data[source]
        return block
