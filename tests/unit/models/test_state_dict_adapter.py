"""The HF <-> megatron table: grouped QKV and gate/up layouts, inverse round trips, and the
spec-keyed norm names."""

import pytest
import torch

from megatron_o1p.models.hf_config import architecture_from_dict
from megatron_o1p.models.state_dict_adapter import StateDictAdapter, layer_index

ARCH = architecture_from_dict(
    dict(
        model_type="qwen2",
        vocab_size=10,
        hidden_size=4,
        intermediate_size=6,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=1,
        tie_word_embeddings=False,
    )
)


class DictSource:
    device = torch.device("cpu")

    def __init__(self, tensors):
        self.tensors = tensors

    def shape_dtype(self, name):
        return tuple(self.tensors[name].shape), self.tensors[name].dtype

    def read(self, name, out=None):
        if out is None:
            return self.tensors[name].clone()
        return out.copy_(self.tensors[name])


def test_qkv_is_grouped_per_query_group():
    # 4 heads, 2 groups, head_dim 1: rows [q0 q1 k0 v0 | q2 q3 k1 v1]
    adapter = StateDictAdapter(ARCH, "local", 16)
    base = "model.layers.0.self_attn."
    q = torch.tensor([[0.0], [1.0], [2.0], [3.0]]).expand(4, 4)
    k = torch.tensor([[10.0], [11.0]]).expand(2, 4)
    v = torch.tensor([[20.0], [21.0]]).expand(2, 4)
    source = DictSource(
        {base + "q_proj.weight": q, base + "k_proj.weight": k, base + "v_proj.weight": v}
    )
    fused = adapter.to_megatron("decoder.layers.0.self_attention.linear_qkv.weight", source)
    assert fused[:, 0].tolist() == [0, 1, 10, 20, 2, 3, 11, 21]


def test_gate_up_and_vocab_padding():
    adapter = StateDictAdapter(ARCH, "local", 16)
    mlp = "model.layers.1.mlp."
    gate, up = torch.randn(6, 4), torch.randn(6, 4)
    embed = torch.randn(10, 4)
    source = DictSource(
        {
            mlp + "gate_proj.weight": gate,
            mlp + "up_proj.weight": up,
            "model.embed_tokens.weight": embed,
        }
    )
    fc1 = adapter.to_megatron("decoder.layers.1.mlp.linear_fc1.weight", source)
    assert torch.equal(fc1, torch.cat([gate, up]))
    padded = adapter.to_megatron("embedding.word_embeddings.weight", source)
    assert padded.shape == (16, 4) and torch.equal(padded[:10], embed)
    assert not padded[10:].any()


@pytest.mark.parametrize("spec", ["local", "te"])
def test_every_parameter_round_trips(spec):
    adapter = StateDictAdapter(ARCH, spec, 16)
    generator = torch.Generator().manual_seed(0)
    shapes = {}
    for i in range(2):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "self_attn.q_proj.weight": (4, 4),
                p + "self_attn.k_proj.weight": (2, 4),
                p + "self_attn.v_proj.weight": (2, 4),
                p + "self_attn.q_proj.bias": (4,),
                p + "self_attn.k_proj.bias": (2,),
                p + "self_attn.v_proj.bias": (2,),
                p + "self_attn.o_proj.weight": (4, 4),
                p + "mlp.gate_proj.weight": (6, 4),
                p + "mlp.up_proj.weight": (6, 4),
                p + "mlp.down_proj.weight": (4, 6),
                p + "input_layernorm.weight": (4,),
                p + "post_attention_layernorm.weight": (4,),
            }
        )
    shapes.update(
        {"model.embed_tokens.weight": (10, 4), "model.norm.weight": (4,), "lm_head.weight": (10, 4)}
    )
    hf = {k: torch.randn(s, generator=generator) for k, s in shapes.items()}
    back = {}
    for name in adapter.megatron_names():
        back.update(adapter.to_hf(name, adapter.to_megatron(name, DictSource(hf))))
    assert back.keys() == hf.keys()
    assert all(torch.equal(back[k], hf[k]) for k in hf)


def test_spec_names_differ_only_in_norms():
    local = set(StateDictAdapter(ARCH, "local", 16).megatron_names())
    te = set(StateDictAdapter(ARCH, "te", 16).megatron_names())
    assert local - te == {
        f"decoder.layers.{i}.{n}.weight"
        for i in range(2)
        for n in ("input_layernorm", "pre_mlp_layernorm")
    }
    assert te - local == {
        f"decoder.layers.{i}.{n}"
        for i in range(2)
        for n in ("self_attention.linear_qkv.layer_norm_weight", "mlp.linear_fc1.layer_norm_weight")
    }


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_local_spec_checkpoint_keys_are_the_te_names(family):
    """megatron maps the local spec's norm names onto TE's in dist checkpoints, which is why one
    checkpoint loads into either spec; the TE table must agree with that map."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    arch = ARCH if family == "qwen2" else QWEN3
    keys_map = get_gpt_layer_local_spec(
        normalization="RMSNorm", qk_layernorm=arch.qk_layernorm
    ).submodules.sharded_state_dict_keys_map
    te = set(StateDictAdapter(arch, "te", 16).megatron_names())
    for name in StateDictAdapter(arch, "local", 16).megatron_names():
        renamed = name
        for old, new in keys_map.items():
            renamed = renamed.replace("." + old, "." + new)
        assert renamed in te, (name, renamed)


def test_tied_model_has_no_output_layer_and_layer_index():
    tied = architecture_from_dict(
        dict(
            model_type="qwen2",
            vocab_size=10,
            hidden_size=4,
            intermediate_size=6,
            num_hidden_layers=1,
            num_attention_heads=2,
            tie_word_embeddings=True,
        )
    )
    assert "output_layer.weight" not in StateDictAdapter(tied, "local", 16).megatron_names()
    assert layer_index("decoder.layers.12.mlp.linear_fc2.weight") == 12
    assert layer_index("decoder.final_layernorm.weight") is None


QWEN3 = architecture_from_dict(
    dict(
        model_type="qwen3",
        vocab_size=10,
        hidden_size=4,
        intermediate_size=6,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=3,  # not hidden / heads
        tie_word_embeddings=True,
    )
)


def _qwen3_hf_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shapes = {"model.embed_tokens.weight": (10, 4), "model.norm.weight": (4,)}
    for i in range(2):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "self_attn.q_proj.weight": (12, 4),
                p + "self_attn.k_proj.weight": (6, 4),
                p + "self_attn.v_proj.weight": (6, 4),
                p + "self_attn.o_proj.weight": (4, 12),
                p + "self_attn.q_norm.weight": (3,),
                p + "self_attn.k_norm.weight": (3,),
                p + "mlp.gate_proj.weight": (6, 4),
                p + "mlp.up_proj.weight": (6, 4),
                p + "mlp.down_proj.weight": (4, 6),
                p + "input_layernorm.weight": (4,),
                p + "post_attention_layernorm.weight": (4,),
            }
        )
    return {k: torch.randn(s, generator=generator) for k, s in shapes.items()}


@pytest.mark.parametrize("spec", ["local", "te"])
def test_qwen3_round_trips_with_qk_norms_and_no_bias(spec):
    adapter = StateDictAdapter(QWEN3, spec, 16)
    hf = _qwen3_hf_tensors()
    back, megatron = {}, {}
    for name in adapter.megatron_names():
        megatron[name] = adapter.to_megatron(name, DictSource(hf))
        back.update(adapter.to_hf(name, megatron[name]))
    assert back.keys() == hf.keys()  # no biases, no lm_head (tied)
    assert all(torch.equal(back[k], hf[k]) for k in hf)
    q_norm = "decoder.layers.1.self_attention.q_layernorm.weight"
    assert torch.equal(megatron[q_norm], hf["model.layers.1.self_attn.q_norm.weight"])
    # head_dim 3: 2 q heads + k + v per group of 3 rows each.
    assert megatron["decoder.layers.0.self_attention.linear_qkv.weight"].shape == (24, 4)


def test_qwen3_qk_norm_names_are_the_same_in_both_specs():
    local = set(StateDictAdapter(QWEN3, "local", 16).megatron_names())
    te = set(StateDictAdapter(QWEN3, "te", 16).megatron_names())
    qk = {f"decoder.layers.{i}.self_attention.{n}_layernorm.weight" for i in range(2) for n in "qk"}
    assert qk <= local & te
    assert {n.split(".", 3)[-1] for n in local ^ te} == {
        "input_layernorm.weight",
        "pre_mlp_layernorm.weight",
        "self_attention.linear_qkv.layer_norm_weight",
        "mlp.linear_fc1.layer_norm_weight",
    }


def test_qwen3_local_spec_builds_the_qk_norm_modules_the_table_names():
    """The local spec's q/k norms keep their names in dist checkpoints (the keys map renames
    only the pre-norms), so the TE rows are the checkpoint keys for both specs."""
    from megatron_o1p.models.specs import HeadRMSNorm, layer_spec

    spec = layer_spec("local", qk_layernorm=True)
    attention = spec.submodules.self_attention.submodules
    assert attention.q_layernorm is not None and attention.k_layernorm is not None
    keys_map = spec.submodules.sharded_state_dict_keys_map
    assert not any("q_layernorm" in k or "k_layernorm" in k for k in keys_map)
    sp = layer_spec("local", sequence_parallel=True, qk_layernorm=True)
    assert sp.submodules.self_attention.submodules.q_layernorm is HeadRMSNorm
    plain = layer_spec("local").submodules.self_attention.submodules
    assert plain.q_layernorm.__name__ == "IdentityOp"
