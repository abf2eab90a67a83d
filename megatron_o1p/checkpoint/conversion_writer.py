"""Stream a converted model into a torch_dist checkpoint, one parameter in memory at a time.

The writer does not build a megatron model in memory: it takes the sharded-state-dict layout of
a TP=1/PP=1 model on torch's meta device (`layout_of`) and asks a callback for each parameter
while torch's distributed-checkpoint writer streams them to disk one at a time. The result is
the `release/` folder of `checkpoint/layout.py`: full, unsharded per-layer tensors under
megatron's sharded keys, loadable at any TP/PP.

Two pieces, both plain module-level objects: `ParameterStream` owns the write items and turns
each into its data on demand (holding one parameter); `StreamingSavePlanner` hands those items
to torch's `dcp.save` unchanged and asks the stream for each item's data.

Tested by tests/e2e/test_convert_cli.py (round trips, logits parity) and
tests/e2e/test_convert_interrupted.py (an error raised mid-write).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import torch
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

from megatron_o1p.errors import CheckpointError, O1pError


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


def _tensor_write_item(leaf, dtype: torch.dtype) -> tuple[WriteItem, tuple[int, ...]]:
    """The write item of one ShardedTensor, and the shape its data is written in."""
    sizes = (1,) * leaf.prepend_axis_num + tuple(leaf.local_shape)
    offset = torch.Size(leaf.global_offset)
    item = WriteItem(
        index=MetadataIndex(leaf.key, offset),
        type=WriteItemType.SHARD,
        tensor_data=TensorWriteData(
            chunk=ChunkStorageMetadata(offset, torch.Size(sizes)),
            properties=TensorProperties(dtype=dtype),
            size=torch.Size(leaf.global_shape),
        ),
    )
    return item, sizes


class ParameterStream:
    """The write items of a layout, and their data on demand, one parameter alive at a time.

    Args:
        produce: param name -> full (TP=1) tensor; called about once per parameter.
    """

    def __init__(self, produce: Callable[[str], torch.Tensor]):
        self.items: list[WriteItem] = []
        self._produce = produce
        self._objects: dict[str, object] = {}
        self._tensors: dict[tuple[str, tuple[int, ...]], tuple[str, object, tuple]] = {}
        self._current: tuple[str, torch.Tensor] | None = None
        self._written: list[torch.Tensor] = []

    def add(self, name: str, leaf, dtype_of: Callable[[str], torch.dtype]) -> None:
        """Plan one leaf of parameter `name` (a ShardedObject or a ShardedTensor)."""
        from megatron.core.dist_checkpointing.mapping import ShardedObject, ShardedTensor

        if isinstance(leaf, ShardedObject):
            index = MetadataIndex(leaf.unique_key)
            self.items.append(WriteItem(index=index, type=WriteItemType.BYTE_IO))
            self._objects[index.fqn] = leaf.data
        elif isinstance(leaf, ShardedTensor):
            item, sizes = _tensor_write_item(leaf, dtype_of(name))
            self.items.append(item)
            self._tensors[(leaf.key, tuple(leaf.global_offset))] = (name, leaf, sizes)
        else:
            raise CheckpointError(f"unexpected sharded entry {type(leaf).__name__} for {name}")

    def resolve(self, item: WriteItem):
        """The data of one write item: a BytesIO for an object, a tensor for a shard."""
        self._release_written()
        if item.type == WriteItemType.BYTE_IO:
            buffer = io.BytesIO()
            torch.save([self._objects[item.index.fqn]], buffer)  # megatron stores a list per key
            buffer.seek(0)
            return buffer
        name, leaf, sizes = self._tensors[(item.index.fqn, tuple(item.index.offset))]
        chunk = self._parameter(name)[_chunk_slices(leaf)].reshape(sizes)
        if chunk.untyped_storage().nbytes() != chunk.nbytes:
            # fc1's gate/up halves; a whole parameter is written without a copy, so the
            # embedding is never held twice.
            chunk = chunk.clone()
        self._written.append(chunk)
        return chunk

    def _parameter(self, name: str) -> torch.Tensor:
        """Parameter `name`, produced once; the previous one is dropped first (fc1's gate and
        up halves are two items of one parameter, so it is kept until another is asked for)."""
        if self._current is None or self._current[0] != name:
            self._current = None
            self._current = (name, self._produce(name))
        return self._current[1]

    def _release_written(self) -> None:
        # NOTE: torch's FileSystemWriter (2.13) keeps a reference to every tensor it has
        # written (for its safetensors output format), which would keep the whole model in
        # memory. With one writer thread each tensor is on disk before the next one is
        # resolved, so free the storage of those already written.
        for tensor in self._written:
            tensor.untyped_storage().resize_(0)
        self._written.clear()


class StreamingSavePlanner(SavePlanner):
    """A single-process save plan of fixed write items whose data comes from a stream.

    torch's default planner derives items from a state dict it holds in memory; this one is
    given the items up front (`ParameterStream.items`) and an empty state dict.
    """

    def __init__(self, stream: ParameterStream):
        self.stream = stream

    def set_up_planner(self, state_dict, storage_meta=None, is_coordinator=False):
        pass

    def create_local_plan(self):
        return SavePlan(self.stream.items)

    def create_global_plan(self, all_plans):
        return create_default_global_save_plan(all_plans)

    def finish_plan(self, new_plan):
        return new_plan

    def resolve_data(self, write_item):
        return self.stream.resolve(write_item)


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

    Raises:
        O1pError: whatever `produce` raised (torch wraps it; it is unwrapped here).
    """
    from megatron.core.dist_checkpointing.core import CheckpointingConfig, save_config

    stream = ParameterStream(produce)
    for name, leaves in layout.items():
        for leaf in leaves:
            stream.add(name, leaf, dtype_of)
    iteration_dir.mkdir(parents=True, exist_ok=True)
    _save_streamed(iteration_dir, StreamingSavePlanner(stream))
    torch.save({}, iteration_dir / "common.pt")  # no non-sharded model state
    save_config(CheckpointingConfig("torch_dist", 1), str(iteration_dir))


def _save_streamed(iteration_dir: Path, planner: StreamingSavePlanner) -> None:
    from torch.distributed import checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    # One writer thread, so each tensor is on disk before the next is resolved.
    writer = dcp.FileSystemWriter(str(iteration_dir), single_file_per_rank=True, thread_count=1)
    try:
        dcp.save({}, storage_writer=writer, planner=planner, no_dist=True)
    except CheckpointException as err:
        # torch wraps whatever `produce` raised; give the user our one-line error back.
        for failure in err.failures.values():
            inner = failure[0] if isinstance(failure, tuple) else getattr(failure, "exc", failure)
            if isinstance(inner, O1pError):
                raise inner from None
        raise
