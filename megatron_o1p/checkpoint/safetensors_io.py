"""Streaming safetensors: read one tensor at a time, write sharded files tensor by tensor.

The safetensors format is an 8-byte little-endian header length, a JSON header
({name: {dtype, shape, data_offsets}}), then raw little-endian tensor bytes. Reading with
`readinto` straight into the destination tensor, and writing from a generator into files whose
headers are planned up front, keeps peak memory at about one tensor: the conversion never holds
a whole model.

Tested by tests/unit/checkpoint/test_safetensors_io.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch

from megatron_o1p.errors import CheckpointError

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorEntry:
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    """Absolute byte offset of the data in `file`."""
    end: int


def _read_header(path: Path) -> tuple[dict, int]:
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    return header, 8 + length


class SafetensorsReader:
    """Index of every tensor in an HF folder's safetensors files; reads one tensor on demand."""

    def __init__(self, hf_dir: str | Path):
        self.hf_dir = Path(hf_dir)
        files = sorted(self.hf_dir.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{self.hf_dir}: no *.safetensors weights found")
        self.entries: dict[str, TensorEntry] = {}
        for path in files:
            header, data_start = _read_header(path)
            data_end = max(
                (
                    info["data_offsets"][1]
                    for name, info in header.items()
                    if name != "__metadata__"
                ),
                default=0,
            )
            if path.stat().st_size < data_start + data_end:
                raise CheckpointError(
                    f"{path}: truncated ({path.stat().st_size} bytes, header "
                    f"needs {data_start + data_end}); re-download the weights"
                )
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                if info["dtype"] not in _DTYPES:
                    raise CheckpointError(
                        f"{path}: tensor {name} has unsupported dtype {info['dtype']}"
                    )
                begin, end = info["data_offsets"]
                self.entries[name] = TensorEntry(
                    path,
                    _DTYPES[info["dtype"]],
                    tuple(info["shape"]),
                    data_start + begin,
                    data_start + end,
                )

    device = torch.device("cpu")

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def shape_dtype(self, name: str) -> tuple[tuple[int, ...], torch.dtype]:
        entry = self._entry(name)
        return entry.shape, entry.dtype

    def _entry(self, name: str) -> TensorEntry:
        if name not in self.entries:
            raise CheckpointError(
                f"{self.hf_dir}: tensor {name} missing from the safetensors "
                "files; config.json does not describe these weights"
            )
        return self.entries[name]

    def read(self, name: str, out: torch.Tensor | None = None) -> torch.Tensor:
        """Read tensor `name`, into `out` (contiguous, same dtype and shape) when given."""
        entry = self._entry(name)
        if out is None:
            out = torch.empty(entry.shape, dtype=entry.dtype)
        if (
            out.shape != torch.Size(entry.shape)
            or out.dtype != entry.dtype
            or not out.is_contiguous()
        ):
            raise ValueError(
                f"read({name}): destination does not match {entry.shape} {entry.dtype}"
            )
        if out.numel() == 0:
            return out
        view = _writable_bytes(out)
        with open(entry.file, "rb") as handle:
            handle.seek(entry.begin)
            if handle.readinto(view) != entry.end - entry.begin:
                raise CheckpointError(f"{entry.file}: truncated data for tensor {name}")
        return out


def _writable_bytes(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor as a writable memoryview.

    Via ctypes rather than `.numpy()`: a numpy view marks the storage non-resizable, and the
    checkpoint writer frees written storage by resizing it to zero.
    """
    buffer = (ctypes.c_char * tensor.nbytes).from_address(tensor.data_ptr())
    return memoryview(buffer).cast("B")


def plan_shards(specs: list[tuple[str, torch.dtype, tuple[int, ...]]], max_shard_bytes: int):
    """Split (name, dtype, shape) in order into consecutive shards of at most max_shard_bytes."""
    shards, current, size = [], [], 0
    for spec in specs:
        nbytes = torch.Size(spec[2]).numel() * torch.empty((), dtype=spec[1]).element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(spec)
        size += nbytes
    if current:
        shards.append(current)
    return shards


def write_sharded(
    out_dir: Path,
    specs: list[tuple[str, torch.dtype, tuple[int, ...]]],
    tensors: Iterator[tuple[str, torch.Tensor]],
    max_shard_bytes: int = 2 << 30,
    metadata: dict | None = None,
) -> list[Path]:
    """Write `tensors` (yielded in `specs` order) as HF sharded safetensors + index.

    One file is written when it all fits in one shard (`model.safetensors`), else
    `model-0000k-of-0000n.safetensors` and `model.safetensors.index.json`.
    """
    shards = plan_shards(specs, max_shard_bytes)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    )
    weight_map, total, paths = {}, 0, []
    for file_name, shard in zip(names, shards):
        header, offset = {"__metadata__": {"format": "pt", **(metadata or {})}}, 0
        for name, dtype, shape in shard:
            nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
            header[name] = {
                "dtype": _NAMES[dtype],
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            offset += nbytes
            weight_map[name] = file_name
        total += offset
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the format aligns the data start to 8 bytes
        path = out_dir / file_name
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(blob)))
            handle.write(blob)
            for name, dtype, shape in shard:
                got_name, tensor = next(tensors)
                if got_name != name or tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
                    raise AssertionError(
                        f"writer expected {name} {dtype} {shape}, got {got_name} "
                        f"{tensor.dtype} {tuple(tensor.shape)}"
                    )
                _write_tensor(handle, tensor)
            handle.flush()
            os.fsync(handle.fileno())
        paths.append(path)
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return paths


def _write_tensor(handle, tensor: torch.Tensor) -> None:
    if tensor.numel():
        handle.write(memoryview(tensor.contiguous().view(-1).view(torch.uint8).numpy()))


def shapes_of(named: Iterable[tuple[str, torch.Tensor]]):
    return [(name, t.dtype, tuple(t.shape)) for name, t in named]
