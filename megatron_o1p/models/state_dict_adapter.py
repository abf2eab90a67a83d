"""HF <-> Megatron parameter mapping for the Qwen2, Qwen3, Qwen3-MoE and Llama families, as data.

The only module that spells HF key names. One table maps each megatron parameter (TP=1, the
model's own `state_dict` names) to the HF tensors it is made of and how they combine; the
reverse direction inverts the same table. The table is keyed on the layer spec because TE fuses
the two pre-norms into the following linears:

    local: decoder.layers.{i}.input_layernorm.weight
    te:    decoder.layers.{i}.self_attention.linear_qkv.layer_norm_weight

(megatron's dist checkpoints use the TE names for both specs, via the local spec's
`sharded_state_dict_keys_map`, so a checkpoint loads into either spec.) Qwen3's per-head q/k
norms are `self_attention.q_layernorm` / `k_layernorm` submodules in both specs (megatron-core
0.16-0.19 `gpt_layer_specs.py`: TENorm in TE's, torch RMSNorm in the local one), so their rows
are the same under both keys of `_NORM_NAMES`.

Megatron's fused layouts:
- `linear_qkv` rows are grouped per query group g: [q heads of g; k_g; v_g] (head_dim rows each).
- `linear_fc1` rows are [gate; up] (SwiGLU).
- embedding / output_layer rows are padded with zeros from vocab_size to padded_vocab_size.

Qwen3-MoE layers replace the MLP rows by a router (`mlp.gate` -> `mlp.router`) and one row per
expert weight (`{e}`: the expert's number), `mlp.experts.{e}.gate_proj/up_proj/down_proj` ->
the expert's fc1 [gate; up] and fc2: sequential experts in the local spec, TE's grouped GEMM
weights (`linear_fc1.weight{e}`) in the TE spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import torch

from megatron_o1p.models.hf_config import ModelArchitecture

LAYER = "{i}"
EXPERT = "{e}"


class HfSource(Protocol):
    """Where HF tensors come from (a safetensors folder, or shapes only on the meta device)."""

    device: torch.device

    def shape_dtype(self, name: str) -> tuple[tuple[int, ...], torch.dtype]: ...

    def read(self, name: str, out: torch.Tensor | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class TensorMapping:
    """One megatron parameter and the HF tensors it is made of."""

    megatron: str
    hf: tuple[str, ...]
    combine: str
    """"copy", "qkv" (grouped q/k/v), "gate_up" (cat dim 0), "vocab" (pad rows)."""


_NORM_NAMES = {
    "local": {
        "attn": "decoder.layers.{i}.input_layernorm.weight",
        "mlp": "decoder.layers.{i}.pre_mlp_layernorm.weight",
        "q": "decoder.layers.{i}.self_attention.q_layernorm.weight",
        "k": "decoder.layers.{i}.self_attention.k_layernorm.weight",
    },
    "te": {
        "attn": "decoder.layers.{i}.self_attention.linear_qkv.layer_norm_weight",
        "mlp": "decoder.layers.{i}.mlp.linear_fc1.layer_norm_weight",
        "q": "decoder.layers.{i}.self_attention.q_layernorm.weight",
        "k": "decoder.layers.{i}.self_attention.k_layernorm.weight",
    },
}


_MOE_NORM = "decoder.layers.{i}.pre_mlp_layernorm.weight"
"""The pre-MLP norm of a mixture-of-experts layer: a module of its own in both specs (TE has no
fc1 to fuse it into; `specs.layer_spec` keeps the local spec's checkpoint key the same)."""

_EXPERT_FC = {
    # megatron's sequential experts (local spec) and TE's grouped ones; the dist-checkpoint
    # keys of both are the sequential names, with global expert numbers
    "local": "decoder.layers.{i}.mlp.experts.local_experts.{e}.linear_fc%d.weight",
    "te": "decoder.layers.{i}.mlp.experts.linear_fc%d.weight{e}",
}


def _dense_mlp_rows() -> list[TensorMapping]:
    hf_mlp = "model.layers.{i}.mlp."
    return [
        TensorMapping(
            "decoder.layers.{i}.mlp.linear_fc1.weight",
            (hf_mlp + "gate_proj.weight", hf_mlp + "up_proj.weight"),
            "gate_up",
        ),
        TensorMapping(
            "decoder.layers.{i}.mlp.linear_fc2.weight", (hf_mlp + "down_proj.weight",), "copy"
        ),
    ]


def _moe_rows(spec: str) -> list[TensorMapping]:
    """Router and experts of a Qwen3-MoE layer: one row per expert weight, so conversion holds
    one expert in memory at a time."""
    hf_expert = "model.layers.{i}.mlp.experts.{e}."
    fc = _EXPERT_FC[spec]
    return [
        TensorMapping(
            "decoder.layers.{i}.mlp.router.weight", ("model.layers.{i}.mlp.gate.weight",), "copy"
        ),
        TensorMapping(
            fc % 1, (hf_expert + "gate_proj.weight", hf_expert + "up_proj.weight"), "gate_up"
        ),
        TensorMapping(fc % 2, (hf_expert + "down_proj.weight",), "copy"),
    ]


def mapping_table(spec: str, arch: ModelArchitecture) -> list[TensorMapping]:
    """The mapping for `spec` ("te" or "local"); `{i}` stands for the layer index."""
    norms = _NORM_NAMES[spec]
    hf_attn = "model.layers.{i}.self_attn."
    table = [
        TensorMapping("embedding.word_embeddings.weight", ("model.embed_tokens.weight",), "vocab"),
        TensorMapping(norms["attn"], ("model.layers.{i}.input_layernorm.weight",), "copy"),
        TensorMapping(
            "decoder.layers.{i}.self_attention.linear_qkv.weight",
            tuple(hf_attn + f"{p}_proj.weight" for p in "qkv"),
            "qkv",
        ),
        TensorMapping(
            "decoder.layers.{i}.self_attention.linear_proj.weight",
            (hf_attn + "o_proj.weight",),
            "copy",
        ),
        TensorMapping(
            _MOE_NORM if arch.is_moe else norms["mlp"],
            ("model.layers.{i}.post_attention_layernorm.weight",),
            "copy",
        ),
        *(_moe_rows(spec) if arch.is_moe else _dense_mlp_rows()),
        TensorMapping("decoder.final_layernorm.weight", ("model.norm.weight",), "copy"),
    ]
    if arch.add_qkv_bias:
        table.append(
            TensorMapping(
                "decoder.layers.{i}.self_attention.linear_qkv.bias",
                tuple(hf_attn + f"{p}_proj.bias" for p in "qkv"),
                "qkv",
            )
        )
    if arch.qk_layernorm:
        table += [
            TensorMapping(norms["q"], (hf_attn + "q_norm.weight",), "copy"),
            TensorMapping(norms["k"], (hf_attn + "k_norm.weight",), "copy"),
        ]
    if not arch.tie_word_embeddings:
        table.append(TensorMapping("output_layer.weight", ("lm_head.weight",), "vocab"))
    return table


def _pattern(template: str) -> re.Pattern:
    escaped = re.escape(template)
    for placeholder, group in ((LAYER, "layer"), (EXPERT, "expert")):
        escaped = escaped.replace(re.escape(placeholder), rf"(?P<{group}>\d+)")
    return re.compile("^" + escaped + "$")


class StateDictAdapter:
    """Converts single parameters between HF and megatron (TP=1) layouts for one model."""

    def __init__(self, arch: ModelArchitecture, spec: str, padded_vocab_size: int):
        self.arch = arch
        self.spec = spec
        self.padded_vocab_size = padded_vocab_size
        self.table = mapping_table(spec, arch)
        self._by_pattern = [(_pattern(m.megatron), m) for m in self.table]

    # ---- lookup ------------------------------------------------------------------------------
    def lookup(self, megatron_name: str) -> tuple[TensorMapping, tuple[str, ...]]:
        """The mapping of a megatron parameter and its concrete HF tensor names."""
        for pattern, mapping in self._by_pattern:
            match = pattern.match(megatron_name)
            if match:
                found = match.groupdict()
                names = tuple(_fill(n, found.get("layer"), found.get("expert")) for n in mapping.hf)
                return mapping, names
        raise KeyError(f"no HF mapping for megatron parameter {megatron_name!r} ({self.spec} spec)")

    def megatron_names(self) -> list[str]:
        """Every megatron parameter name, in model order (per layer, then the rest)."""
        layers = range(self.arch.num_layers)
        experts = range(self.arch.num_experts or 0)
        names = []
        for mapping in self.table:
            template = mapping.megatron
            if EXPERT in template:
                names += [_fill(template, i, e) for i in layers for e in experts]
            elif LAYER in template:
                names += [_fill(template, i) for i in layers]
            else:
                names.append(template)
        return names

    def hf_names(self) -> list[str]:
        return [hf for name in self.megatron_names() for hf in self.lookup(name)[1]]

    # ---- HF -> megatron ----------------------------------------------------------------------
    def to_megatron(self, megatron_name: str, source: "HfSource") -> torch.Tensor:
        """Build one megatron (TP=1) parameter from the HF tensors in `source`."""
        mapping, hf_names = self.lookup(megatron_name)
        if mapping.combine == "copy":
            return source.read(hf_names[0])
        if mapping.combine == "gate_up":
            return torch.cat([source.read(n) for n in hf_names], dim=0)
        if mapping.combine == "qkv":
            return self._fuse_qkv(*(source.read(n) for n in hf_names))
        if mapping.combine == "vocab":
            # Read straight into the padded buffer: the embedding is the largest tensor, and a
            # second full-size copy would double the conversion's peak memory.
            shape, dtype = source.shape_dtype(hf_names[0])
            padded = torch.zeros(
                (self.padded_vocab_size, *shape[1:]), dtype=dtype, device=source.device
            )
            source.read(hf_names[0], out=padded[: shape[0]])
            return padded
        raise AssertionError(mapping.combine)

    def _fuse_qkv(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        groups, head_dim = self.arch.num_query_groups, self.arch.kv_channels
        rest = q.shape[1:]  # (hidden,) for weights, () for biases
        grouped = [
            q.reshape(groups, -1, *rest),
            k.reshape(groups, head_dim, *rest),
            v.reshape(groups, head_dim, *rest),
        ]
        return torch.cat(grouped, dim=1).reshape(-1, *rest)

    # ---- megatron -> HF ----------------------------------------------------------------------
    def to_hf(self, megatron_name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split one megatron (TP=1) parameter into its HF tensors (padding trimmed)."""
        mapping, hf_names = self.lookup(megatron_name)
        if mapping.combine == "copy":
            parts = [tensor]
        elif mapping.combine == "gate_up":
            parts = list(tensor.chunk(2, dim=0))
        elif mapping.combine == "qkv":
            parts = self._split_qkv(tensor)
        elif mapping.combine == "vocab":
            parts = [tensor[: self.arch.vocab_size]]
        else:
            raise AssertionError(mapping.combine)
        return {name: part.contiguous() for name, part in zip(hf_names, parts)}

    def _split_qkv(self, fused: torch.Tensor) -> list[torch.Tensor]:
        groups, head_dim = self.arch.num_query_groups, self.arch.kv_channels
        q_per_group = self.arch.num_attention_heads // groups * head_dim
        rest = fused.shape[1:]
        grouped = fused.reshape(groups, q_per_group + 2 * head_dim, *rest)
        q, k, v = grouped.split([q_per_group, head_dim, head_dim], dim=1)
        return [t.reshape(-1, *rest) for t in (q, k, v)]


def _fill(template: str, layer=None, expert=None) -> str:
    """`template` with its `{i}` / `{e}` placeholders replaced (those given)."""
    if layer is not None:
        template = template.replace(LAYER, str(layer))
    if expert is not None:
        template = template.replace(EXPERT, str(expert))
    return template


def layer_index(megatron_name: str) -> int | None:
    """Layer number of a `decoder.layers.{i}.` parameter, else None."""
    match = re.match(r"^decoder\.layers\.(\d+)\.", megatron_name)
    return int(match.group(1)) if match else None
