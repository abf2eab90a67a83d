"""Megatron dist checkpoints (torch_dist): streaming write, partial read, load into a model.

Layout of a checkpoint folder M (Megatron-LM's tracker convention):

    M/o1p_checkpoint.json            architecture, spec, padded vocab, sharding metadata
    M/hf/                            the source config.json, generation config, tokenizer files
    M/latest_checkpointed_iteration.txt   "release" (conversion) or the last iteration
    M/release/ or M/iter_0000100/    megatron torch_dist: .metadata, *.distcp, common.pt,
                                     metadata.json

Tensors are stored as full, unsharded per-layer tensors keyed by megatron's own sharded keys
(`decoder.layers.{i}.self_attention.linear_qkv.weight`, ...), so megatron's resharding load
reads them at ANY tensor/pipeline parallel size.

The writer does not build a megatron model in memory: it takes the sharded-state-dict layout
of a model on torch's meta device and asks a callback for each parameter while torch's
distributed-checkpoint writer streams them to disk one at a time.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import torch

from megatron_o1p.errors import CheckpointError, O1pError

# Per-layer keys (`decoder.layers.{i}.`) rather than one stacked [num_layers, ...] tensor per
# parameter: readable, and where megatron-core is heading (its TODO drops the stacked form).
# NOTE: megatron adds process groups into the dict it is given: always pass a fresh copy.
_SHARDING_METADATA = {"non_homogeneous_layers": True, "singleton_local_shards": False}


def sharding_metadata() -> dict:
    """The `metadata` argument for every `sharded_state_dict()` call (a fresh dict)."""
    return dict(_SHARDING_METADATA)


CHECKPOINT_META = "o1p_checkpoint.json"
TRACKER = "latest_checkpointed_iteration.txt"
FORMAT_VERSION = 1


def resolve_iteration_dir(ckpt_dir: str | Path) -> Path:
    """The torch_dist folder of a checkpoint: via the tracker file, else the folder itself."""
    ckpt_dir = Path(ckpt_dir)
    tracker = ckpt_dir / TRACKER
    if tracker.is_file():
        value = tracker.read_text().strip()
        return ckpt_dir / ("release" if value == "release" else f"iter_{int(value):07d}")
    return ckpt_dir


def read_checkpoint_meta(ckpt_dir: str | Path) -> dict:
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


def _sharded_leaves(value):
    """ShardedBase leaves of one sharded-state-dict entry (factories already applied)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _sharded_leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _sharded_leaves(item)
    else:
        yield value


def layout_of(meta_sharded_state_dict: dict) -> dict:
    """{model param name: [ShardedTensor | ShardedObject leaves]} with factories applied."""
    from megatron.core.dist_checkpointing.mapping import apply_factories

    state = dict(meta_sharded_state_dict)
    apply_factories(state)
    return {name: list(_sharded_leaves(value)) for name, value in state.items()}


def _chunk_slices(sh_ten) -> tuple[slice, ...]:
    """Where a ShardedTensor of a TP=1 model sits inside its (unsharded) parameter."""
    offsets = sh_ten.global_offset[sh_ten.prepend_axis_num :]
    return tuple(slice(o, o + n) for o, n in zip(offsets, sh_ten.local_shape))


def write_checkpoint(
    iteration_dir: Path,
    layout: dict,
    produce: Callable[[str], torch.Tensor],
    dtype_of: Callable[[str], torch.dtype],
) -> None:
    """Write a torch_dist checkpoint for a TP=1/PP=1 layout, one parameter in memory at a time.

    Args:
        iteration_dir: empty folder to write into.
        layout: `layout_of(model.sharded_state_dict(...))` of a meta-device model.
        produce: param name -> full (TP=1) tensor; called about once per parameter.
        dtype_of: param name -> dtype stored for it (known before any tensor is read).
    """
    from megatron.core.dist_checkpointing.core import CheckpointingConfig, save_config
    from megatron.core.dist_checkpointing.mapping import ShardedObject, ShardedTensor
    from torch.distributed import checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.default_planner import create_default_global_save_plan
    from torch.distributed.checkpoint.metadata import (
        ChunkStorageMetadata,
        MetadataIndex,
        TensorProperties,
    )
    from torch.distributed.checkpoint.planner import (
        SavePlan,
        SavePlanner,
        TensorWriteData,
        WriteItem,
        WriteItemType,
    )

    items, sources = [], {}
    for name, leaves in layout.items():
        for leaf in leaves:
            if isinstance(leaf, ShardedObject):
                index = MetadataIndex(leaf.unique_key)
                items.append(WriteItem(index=index, type=WriteItemType.BYTE_IO))
                sources[index.fqn] = ("object", leaf.data)
            elif isinstance(leaf, ShardedTensor):
                sizes = (1,) * leaf.prepend_axis_num + tuple(leaf.local_shape)
                index = MetadataIndex(leaf.key, torch.Size(leaf.global_offset))
                items.append(
                    WriteItem(
                        index=index,
                        type=WriteItemType.SHARD,
                        tensor_data=TensorWriteData(
                            chunk=ChunkStorageMetadata(
                                torch.Size(leaf.global_offset), torch.Size(sizes)
                            ),
                            properties=TensorProperties(dtype=dtype_of(name)),
                            size=torch.Size(leaf.global_shape),
                        ),
                    )
                )
                sources[(leaf.key, tuple(leaf.global_offset))] = ("tensor", name, leaf, sizes)
            else:
                raise CheckpointError(f"unexpected sharded entry {type(leaf).__name__} for {name}")

    cache: dict[str, torch.Tensor] = {}
    written: list[torch.Tensor] = []

    def release_written():
        # NOTE: torch's FileSystemWriter (2.13) keeps a reference to every tensor it has
        # written (for its safetensors output format), which would keep the whole model in
        # memory. With one writer thread each tensor is on disk before the next one is
        # resolved, so free the storage of those already written.
        for tensor in written:
            tensor.untyped_storage().resize_(0)
        written.clear()

    def resolve(item):
        release_written()
        if item.type == WriteItemType.BYTE_IO:
            buffer = io.BytesIO()
            torch.save([sources[item.index.fqn][1]], buffer)  # megatron stores a list per key
            buffer.seek(0)
            return buffer
        _, name, leaf, sizes = sources[(item.index.fqn, tuple(item.index.offset))]
        if name not in cache:
            cache.clear()  # one parameter alive at a time (fc1's gate/up share one)
            cache[name] = produce(name)
        chunk = cache[name][_chunk_slices(leaf)].reshape(sizes)
        if chunk.untyped_storage().nbytes() != chunk.nbytes:
            # fc1's gate/up halves; a whole parameter is written without a copy, so the
            # embedding is never held twice.
            chunk = chunk.clone()
        written.append(chunk)
        return chunk

    class StreamingPlanner(SavePlanner):
        def set_up_planner(self, state_dict, storage_meta=None, is_coordinator=False):
            pass

        def create_local_plan(self):
            return SavePlan(items)

        def create_global_plan(self, all_plans):
            return create_default_global_save_plan(all_plans)

        def finish_plan(self, new_plan):
            return new_plan

        def resolve_data(self, write_item):
            return resolve(write_item)

    iteration_dir.mkdir(parents=True, exist_ok=True)
    writer = dcp.FileSystemWriter(str(iteration_dir), single_file_per_rank=True, thread_count=1)
    try:
        dcp.save({}, storage_writer=writer, planner=StreamingPlanner(), no_dist=True)
    except CheckpointException as err:
        # torch wraps whatever `produce` raised; give the user our one-line error back.
        for failure in err.failures.values():
            inner = failure[0] if isinstance(failure, tuple) else getattr(failure, "exc", failure)
            if isinstance(inner, O1pError):
                raise inner from None
        raise
    torch.save({}, iteration_dir / "common.pt")  # no non-sharded model state
    save_config(CheckpointingConfig("torch_dist", 1), str(iteration_dir))


def write_checkpoint_meta(ckpt_dir: Path, meta: dict) -> None:
    """Write o1p_checkpoint.json atomically (temp name, fsync, then rename)."""
    _write_durably(ckpt_dir / CHECKPOINT_META, json.dumps(meta, indent=2) + "\n")


def model_sharded_state(model_chunks: list) -> dict:
    """The sharded state dict of this rank's model chunks (one chunk, or model0, model1, ...)."""
    if len(model_chunks) == 1:
        return model_chunks[0].sharded_state_dict(metadata=sharding_metadata())
    return {
        f"model{i}": chunk.sharded_state_dict(metadata=sharding_metadata())
        for i, chunk in enumerate(model_chunks)
    }


def save_state(state: dict, ckpt_dir: str | Path, *, iteration: int, meta: dict) -> Path:
    """Save a (sharded) state dict with megatron's `dist_checkpointing.save` (all ranks call).

    Atomic: every rank writes into `.iter_{iteration:07d}.tmp`; once all have finished, rank 0
    renames it to `iter_{iteration:07d}`, then replaces `o1p_checkpoint.json` and, last, the
    tracker file (each under a temporary name, fsynced, then renamed). The tracker is the commit
    point: a crash at any moment before it is replaced leaves it naming the previous complete
    checkpoint, which is what loads (`tests/distributed/test_train.py` SIGKILLs a run inside
    each window). Stale `.iter_*.tmp` folders of crashed saves are removed by the next save.
    """
    import shutil

    import torch.distributed as dist
    from megatron.core import dist_checkpointing

    ckpt_dir = Path(ckpt_dir)
    name = f"iter_{iteration:07d}"
    tmp, final = ckpt_dir / f".{name}.tmp", ckpt_dir / name
    if dist.get_rank() == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".iter_*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    dist.barrier()
    dist_checkpointing.save(state, str(tmp))
    dist.barrier()
    if dist.get_rank() == 0:
        if not (tmp / "common.pt").exists():
            # megatron-core >= 0.19 keeps the common state inside the DCP files ("common_state");
            # 0.16.1 can only load it from common.pt. Write both so either version loads it.
            common = dist_checkpointing.load_common_state_dict(str(tmp))
            torch.save(common, tmp / "common.pt")
        _test_pause(iteration, "written")
        if final.exists():  # left by a crash after its rename (so not the tracked one)
            old = ckpt_dir / f".{name}.old.tmp"
            final.rename(old)  # rename, not rmtree: the folder is never half deleted
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        write_checkpoint_meta(
            ckpt_dir,
            {**meta, "format_version": FORMAT_VERSION, "iteration": iteration,
             "sharding_metadata": sharding_metadata()},
        )  # fmt: skip
        _test_pause(iteration, "renamed")
        _write_durably(ckpt_dir / TRACKER, f"{iteration}\n")
    dist.barrier()
    return final


def tracked_iteration(ckpt_dir: str | Path) -> int | None:
    """The iteration the tracker file names (None: no tracker, or a conversion's "release")."""
    tracker = Path(ckpt_dir) / TRACKER
    if not tracker.is_file():
        return None
    value = tracker.read_text().strip()
    return int(value) if value.isdigit() else None


def _write_durably(path: Path, text: str) -> None:
    """Replace `path` atomically: temporary name, fsync, rename, fsync of the folder."""
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _test_pause(iteration: int, stage: str) -> None:
    """Test-only hook: with O1P_TEST_PAUSE_IN_SAVE="ITERATION:STAGE", stop here (after saying
    so on stdout) so a test can SIGKILL the process inside that window of a real save."""
    import os
    import time

    if os.environ.get("O1P_TEST_PAUSE_IN_SAVE") == f"{iteration}:{stage}":
        print(f"o1p test hook: paused in the save of iteration {iteration} ({stage})", flush=True)
        time.sleep(3600)


def save_model(model_chunks: list, ckpt_dir: str | Path, *, iteration: int, meta: dict) -> Path:
    """Save only the model weights of this rank's chunks (see `save_state`)."""
    return save_state(model_sharded_state(model_chunks), ckpt_dir, iteration=iteration, meta=meta)


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
    """Load a checkpoint's weights into this rank's model chunks (any TP/PP/VPP)."""
    iteration_dir = resolve_iteration_dir(ckpt_dir)
    if len(model_chunks) == 1:
        request = model_chunks[0].sharded_state_dict(metadata=sharding_metadata())
        loaded = {"model0": load_tensors(iteration_dir, request)}
    else:
        request = {
            f"model{i}": chunk.sharded_state_dict(metadata=sharding_metadata())
            for i, chunk in enumerate(model_chunks)
        }
        loaded = load_tensors(iteration_dir, request)
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
        shape, dtype = self.shape_dtype(key)
        chunks = self.metadata.state_dict_metadata[key].chunks
        if len(chunks) == 1 and tuple(chunks[0].sizes) == shape:
            return self._load_chunk(key, chunks[0].offsets).reshape(shape)
        full = torch.empty(shape, dtype=dtype)
        for chunk in chunks:
            region = tuple(slice(o, o + n) for o, n in zip(chunk.offsets, chunk.sizes))
            full[region] = self._load_chunk(key, chunk.offsets).reshape(tuple(chunk.sizes))
        return full
