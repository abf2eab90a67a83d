"""Streaming safetensors reader/writer agree with the safetensors library and HF sharding."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from megatron_o1p.checkpoint.safetensors_io import SafetensorsReader, write_sharded
from megatron_o1p.errors import CheckpointError


def test_reader_matches_library(tmp_path):
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(4, 2).to(torch.bfloat16),
        "empty": torch.zeros(0, 3),
    }
    save_file(tensors, tmp_path / "model.safetensors")
    reader = SafetensorsReader(tmp_path)
    for name, tensor in tensors.items():
        assert torch.equal(reader.read(name), tensor)
    out = torch.zeros(6, 5)
    reader.read("a", out=out[:3])  # into a contiguous row block, as vocab padding does
    assert torch.equal(out[:3], tensors["a"]) and not out[3:].any()
    with pytest.raises(CheckpointError, match="tensor nope missing"):
        reader.read("nope")


def test_writer_shards_and_index_load_with_library(tmp_path):
    named = [
        (f"t{i}", torch.randn(64, 16).to(torch.bfloat16 if i % 2 else torch.float32))
        for i in range(5)
    ]
    specs = [(n, t.dtype, tuple(t.shape)) for n, t in named]
    paths = write_sharded(tmp_path, specs, iter(named), max_shard_bytes=5000)
    assert len(paths) > 1
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == {n for n, _ in named}
    for name, tensor in named:
        with safe_open(tmp_path / index["weight_map"][name], framework="pt") as handle:
            assert torch.equal(handle.get_tensor(name), tensor)


def test_single_shard_has_no_index(tmp_path):
    named = [("w", torch.randn(2, 2))]
    write_sharded(tmp_path, [("w", torch.float32, (2, 2))], iter(named))
    assert (tmp_path / "model.safetensors").is_file()
    assert not (tmp_path / "model.safetensors.index.json").exists()


def test_truncated_file_is_reported(tmp_path):
    save_file({"a": torch.randn(100)}, tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-40])
    with pytest.raises(CheckpointError, match="truncated"):
        SafetensorsReader(tmp_path)
