"""HF <-> Megatron checkpoint conversion, streaming one parameter at a time.

    o1p convert hf-to-mcore --hf-dir H --out M [--spec te|local] [--tensor-model-parallel-size T
                            --pipeline-model-parallel-size P]
    o1p convert mcore-to-hf --mcore-dir M --out H

hf-to-mcore writes a torch_dist checkpoint whose tensors are unsharded per layer (see
`checkpoint/layout.py`), so it loads at any TP/PP; the TP/PP flags only check that the layout
you plan to train with is possible (TP divides heads, KV heads, ffn and the padded vocab; PP
divides the layers) before anything is written. Both directions write into a temporary folder
(`megatron_o1p/atomic.py`) renamed at the end: an interrupted run never leaves an output that
looks complete.

Tested by tests/e2e/test_convert_cli.py and tests/e2e/test_convert_interrupted.py.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from megatron_o1p.atomic import atomic_dir
from megatron_o1p.checkpoint.conversion_writer import layout_of, write_checkpoint
from megatron_o1p.checkpoint.convert_config import HfToMcoreConfig, McoreToHfConfig
from megatron_o1p.checkpoint.layout import (
    FORMAT_VERSION,
    RELEASE,
    sharding_metadata,
    write_checkpoint_meta,
    write_tracker,
)
from megatron_o1p.checkpoint.reader import (
    GlobalTensorReader,
    read_checkpoint_meta,
    resolve_iteration_dir,
)
from megatron_o1p.checkpoint.safetensors_io import SafetensorsReader, write_sharded
from megatron_o1p.errors import CheckpointError
from megatron_o1p.memory import release_freed_tensors_to_os
from megatron_o1p.models.hf_config import ModelArchitecture, read_architecture
from megatron_o1p.models.state_dict_adapter import StateDictAdapter, layer_index

# Files copied verbatim between the HF folder and the checkpoint's hf/ folder.
HF_SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    upper = text.strip().upper()
    for unit, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if upper.endswith(unit):
            return int(float(upper[: -len(unit)]) * factor)
    return int(upper)


class _BinReader:
    """pytorch_model*.bin weights, only with --allow-bin-weights (weights_only, mmap)."""

    device = torch.device("cpu")

    def __init__(self, hf_dir: Path):
        self.hf_dir = hf_dir
        self.tensors = {}
        for path in sorted(hf_dir.glob("pytorch_model*.bin")):
            self.tensors.update(torch.load(path, map_location="cpu", weights_only=True, mmap=True))

    def shape_dtype(self, name: str):
        if name not in self.tensors:
            raise CheckpointError(
                f"{self.hf_dir}: tensor {name} missing from the .bin weights; "
                "config.json does not describe these weights"
            )
        return tuple(self.tensors[name].shape), self.tensors[name].dtype

    def read(self, name: str, out: torch.Tensor | None = None) -> torch.Tensor:
        self.shape_dtype(name)
        if out is None:
            return self.tensors[name].clone()
        return out.copy_(self.tensors[name])


class _ShapeOnly:
    """An HF source that yields meta tensors: checks every shape before any byte is read."""

    device = torch.device("meta")

    def __init__(self, source):
        self.source = source

    def shape_dtype(self, name: str):
        return self.source.shape_dtype(name)

    def read(self, name: str, out: torch.Tensor | None = None) -> torch.Tensor:
        shape, dtype = self.source.shape_dtype(name)
        if out is not None:
            if tuple(out.shape) != tuple(shape):
                raise CheckpointError(
                    f"tensor {name} has shape {shape}, expected {tuple(out.shape)}"
                )
            return out
        return torch.empty(shape, dtype=dtype, device="meta")


def _open_weights(hf_dir: Path, allow_bin: bool):
    if any(hf_dir.glob("*.safetensors")):
        return SafetensorsReader(hf_dir)
    if any(hf_dir.glob("pytorch_model*.bin")):
        if not allow_bin:
            raise CheckpointError(
                f"{hf_dir}: only pytorch_model*.bin weights (pickle); convert them to safetensors, "
                "or pass --allow-bin-weights to load them with torch.load(weights_only=True)"
            )
        return _BinReader(hf_dir)
    raise CheckpointError(f"{hf_dir}: no model weights (*.safetensors) found")


def _initialize_single_process():
    from megatron_o1p.distributed.initialize import ParallelConfig, initialize

    return initialize(ParallelConfig())


def _layout(arch: ModelArchitecture, padded_vocab: int) -> tuple[str, object, dict]:
    """(spec, meta-device model, checkpoint layout) of the TP=1/PP=1 model (no memory)."""
    from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
    from megatron_o1p.models.specs import buildable_spec

    state = _initialize_single_process()
    # Megatron's dist-checkpoint keys are the same for both specs (TE names); build the spec
    # that can be built here.
    spec = buildable_spec()
    (model,) = build_gpt_chunks(
        arch,
        state,
        ModelOptions(spec=spec, padded_vocab_size=padded_vocab, meta_device=True, seq_length=8),
    )
    return spec, model, layout_of(model.sharded_state_dict(metadata=sharding_metadata()))


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out}: already exists; pass --overwrite or choose another --out")


def _copy_side_files(src: Path, dst: Path) -> list[str]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in HF_SIDE_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    return copied


def _open_hf_source(cfg: HfToMcoreConfig) -> tuple[ModelArchitecture, object, int]:
    """(architecture, weight reader, padded vocab) of the HF folder, checked for `cfg`'s
    TP/PP/EP."""
    hf_dir = Path(cfg.hf_dir)
    arch = read_architecture(hf_dir)
    if not any((hf_dir / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(
            f"{hf_dir}: no tokenizer (tokenizer.json or tokenizer.model); "
            "save the tokenizer into the model folder"
        )
    reader = _open_weights(hf_dir, cfg.allow_bin_weights)
    padded_vocab = arch.padded_vocab_size(cfg.make_vocab_size_divisible_by)
    arch.check_tensor_parallel(cfg.tensor_model_parallel_size, padded_vocab)
    arch.check_pipeline_parallel(cfg.pipeline_model_parallel_size)
    arch.check_expert_parallel(cfg.expert_model_parallel_size, f"{hf_dir}: ")
    return arch, reader, padded_vocab


def _stored_dtypes(hf_dir: Path, layout: dict, model, adapter, reader) -> dict[str, torch.dtype]:
    """{param name: dtype} after checking, on shapes only, that every parameter can be built
    from the HF tensors (nothing is read)."""
    meta_params = dict(model.named_parameters())
    dtypes, shapes_only = {}, _ShapeOnly(reader)
    for name in layout:
        if name.endswith("_extra_state"):
            continue
        fused = adapter.to_megatron(name, shapes_only)
        if fused.shape != meta_params[name].shape:
            hf_names = adapter.lookup(name)[1]
            raise CheckpointError(
                f"{hf_dir}: {', '.join(hf_names)} give shape {tuple(fused.shape)} for {name} but "
                f"config.json implies {tuple(meta_params[name].shape)}; config and weights disagree"
            )
        dtypes[name] = fused.dtype
    return dtypes


def _produce_megatron(adapter, reader, progress, name: str) -> torch.Tensor:
    """Megatron parameter `name` built from the HF tensors (one progress tick)."""
    tensor = adapter.to_megatron(name, reader)
    if progress is not None:
        progress.update(1)
    return tensor


def _conversion_meta(cfg: HfToMcoreConfig, spec: str, arch, padded_vocab: int, dtypes) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "spec": spec,
        "architecture": arch.to_json(),
        "padded_vocab_size": padded_vocab,
        "make_vocab_size_divisible_by": cfg.make_vocab_size_divisible_by,
        "dtype": str(next(iter(dtypes.values()))).replace("torch.", ""),
        "sharding_metadata": sharding_metadata(),
        "iteration": RELEASE,
        "source": {"kind": "hf", "path_name": Path(cfg.hf_dir).name},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def hf_to_mcore(cfg: HfToMcoreConfig, progress=None) -> Path:
    """Convert an HF Qwen2/Llama folder into a megatron dist checkpoint at `cfg.out`.

    Args:
        progress: optional tqdm-like object; gets `reset(total=parameters)` then `update(1)`
            per parameter written.
    """
    from megatron_o1p.models.specs import buildable_spec

    hf_dir, out = Path(cfg.hf_dir), Path(cfg.out)
    release_freed_tensors_to_os()
    spec = buildable_spec() if cfg.spec == "auto" else cfg.spec
    arch, reader, padded_vocab = _open_hf_source(cfg)
    layout_spec, model, layout = _layout(arch, padded_vocab)
    adapter = StateDictAdapter(arch, layout_spec, padded_vocab)  # names of the built model
    dtypes = _stored_dtypes(hf_dir, layout, model, adapter, reader)
    produce = functools.partial(_produce_megatron, adapter, reader, progress)
    if progress is not None:
        progress.reset(total=len(dtypes))

    _check_out(out, cfg.overwrite)
    with atomic_dir(out, replace=cfg.overwrite) as tmp:
        write_checkpoint(tmp / RELEASE, layout, produce, dtypes.__getitem__)
        _copy_side_files(hf_dir, tmp / "hf")
        write_tracker(tmp, RELEASE)
        write_checkpoint_meta(tmp, _conversion_meta(cfg, spec, arch, padded_vocab, dtypes))
    return out


@dataclass(frozen=True)
class _Block:
    """Where one parameter of the TP=1 model lies in the checkpoint."""

    key: str
    global_shape: tuple[int, ...]
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    shape: tuple[int, ...]
    """The parameter's shape: `sizes` less the prepended expert axis."""


def _block(leaves: list, shape: tuple[int, ...]) -> _Block:
    """The `_Block` of a TP=1 parameter of `shape` from its ShardedTensor leaves: the whole
    global tensor, or for a MoE expert (whose leaves prepend the expert axis, and split a
    gated fc1 into its gate and up halves) its expert's slice of it."""
    tensors = [leaf for leaf in leaves if hasattr(leaf, "global_offset")]
    first = tensors[0]
    start = [min(leaf.global_offset[d] for leaf in tensors) for d in range(len(first.global_shape))]
    end = [
        max(
            leaf.global_offset[d] + ((1,) * leaf.prepend_axis_num + tuple(leaf.local_shape))[d]
            for leaf in tensors
        )
        for d in range(len(first.global_shape))
    ]
    return _Block(
        key=first.key,
        global_shape=tuple(first.global_shape),
        offsets=tuple(start),
        sizes=tuple(e - s for s, e in zip(start, end)),
        shape=tuple(shape),
    )


def _units(layout: dict) -> list[list[str]]:
    """Parameter names grouped so one group is in memory at a time: embedding, each layer,
    then final norm and output layer."""
    head, layers, tail = [], {}, []
    for name in layout:
        index = layer_index(name)
        if index is not None:
            layers.setdefault(index, []).append(name)
        elif name.startswith("embedding."):
            head.append(name)
        else:
            tail.append(name)
    return [head] + [layers[i] for i in sorted(layers)] + [tail]


def _hf_specs(units, keys, params, adapter, reader) -> list[tuple[str, torch.dtype, tuple]]:
    """(HF name, dtype, shape) of every output tensor, in write order, from metadata only."""
    specs = []
    for unit in units:
        for name in unit:
            block = keys[name]
            stored, dtype = reader.shape_dtype(block.key)
            if tuple(stored) != block.global_shape:
                raise CheckpointError(
                    f"{reader.iteration_dir}: {block.key} has shape {tuple(stored)}, "
                    f"the architecture implies {block.global_shape}"
                )
            shape = block.shape
            meta_tensor = torch.empty(shape, dtype=dtype, device="meta")
            specs += [
                (k, v.dtype, tuple(v.shape)) for k, v in adapter.to_hf(name, meta_tensor).items()
            ]
    return specs


def _hf_tensors(units, keys, adapter, reader, progress):
    """(HF name, tensor) pairs in `_hf_specs` order, one megatron parameter read at a time."""
    for unit in units:
        for name in unit:
            block = keys[name]
            tensor = reader.read_region(block.key, block.offsets, block.sizes)
            yield from adapter.to_hf(name, tensor.reshape(block.shape)).items()
            if progress is not None:
                progress.update(1)


def mcore_to_hf(cfg: McoreToHfConfig, progress=None) -> Path:
    """Convert a megatron dist checkpoint back into an HF folder at `cfg.out`.

    Args:
        progress: optional tqdm-like object (`reset(total=...)`, `update(1)` per parameter).
    """
    mcore_dir, out = Path(cfg.mcore_dir), Path(cfg.out)
    release_freed_tensors_to_os()
    meta = read_checkpoint_meta(mcore_dir)
    arch = ModelArchitecture.from_json(meta["architecture"])
    padded_vocab = meta["padded_vocab_size"]
    layout_spec, model, layout = _layout(arch, padded_vocab)
    adapter = StateDictAdapter(arch, layout_spec, padded_vocab)
    reader = GlobalTensorReader(resolve_iteration_dir(mcore_dir))
    params = dict(model.named_parameters())
    # Layout rule: a parameter of the TP=1 model IS a block of its checkpoint key's global
    # tensor: the whole of it, or one expert of a MoE layer's [experts, ...] tensor.
    keys = {name: _block(layout[name], params[name].shape) for name in params}
    units = [[n for n in unit if n in params] for unit in _units(layout)]
    specs = _hf_specs(units, keys, params, adapter, reader)
    if progress is not None:
        progress.reset(total=sum(len(unit) for unit in units))

    _check_out(out, cfg.overwrite)
    with atomic_dir(out, replace=cfg.overwrite) as tmp:
        tensors = _hf_tensors(units, keys, adapter, reader, progress)
        write_sharded(tmp, specs, tensors, _parse_size(cfg.max_shard_size))
        copied = _copy_side_files(mcore_dir / "hf", tmp)
        if "config.json" not in copied:
            raise CheckpointError(
                f"{mcore_dir / 'hf'}: config.json missing; checkpoint is incomplete"
            )
        if "generation_config.json" not in copied:
            _write_generation_config(tmp)
    return out


def _write_generation_config(hf_dir: Path) -> None:
    """A generation_config.json with the token ids of config.json (into the temporary folder)."""
    config = json.loads((hf_dir / "config.json").read_text())
    generation = {
        k: config[k]
        for k in ("bos_token_id", "eos_token_id", "pad_token_id")
        if config.get(k) is not None
    }
    (hf_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
