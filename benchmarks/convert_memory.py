#!/usr/bin/env python
"""Peak memory of HF <-> Megatron conversion vs the model's size.

    python benchmarks/convert_memory.py [--num-layers 24] [--dtype bfloat16] [--workdir DIR]
    python benchmarks/convert_memory.py --shape qwen3-30b-a3b --num-layers 2

Builds a random HF checkpoint with Qwen2.5-0.5B's shapes (hidden 896, ffn 4864, 14 heads,
2 KV heads, vocab 151936, tied embeddings) or Qwen3-30B-A3B's (hidden 2048, 32 heads of
128, 4 KV heads, q/k norms, 128 experts of 768 per layer, a router, vocab 151936, untied: one
layer's experts are 1.2 GB in bf16, twice one embedding), then runs each conversion direction
in a fresh
process and reports the peak RSS above that process's baseline after imports (torch +
megatron-core + transformers, a constant unrelated to the model). Baseline for comparison, in
the same kind of process: `safetensors.torch.load_file` of the whole model, materialised (what
a non-streaming converter starts from).

Target: peak <= 1.5 x (largest transformer layer + embeddings), not the whole model; for the
mixture of experts, converted one expert at a time, about one embedding (the largest tensor).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QWEN25_05B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
)

CHILD = r"""
import json, sys, time
from pathlib import Path
import torch, megatron.core, transformers, safetensors.torch  # imports before the baseline
from megatron_o1p.checkpoint.convert import (HfToMcoreConfig, McoreToHfConfig, hf_to_mcore,
                                             mcore_to_hf)
from megatron_o1p.distributed.initialize import ParallelConfig, initialize
initialize(ParallelConfig())
from megatron_o1p.memory import peak_rss_mib, reset_peak_rss, rss_mib
what, src, dst = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
reset_peak_rss()  # the peak below is this step's
base = rss_mib()
start = time.perf_counter()
if what == "hf-to-mcore":
    hf_to_mcore(HfToMcoreConfig(hf_dir=src, out=dst, spec="local"))
elif what == "mcore-to-hf":
    mcore_to_hf(McoreToHfConfig(mcore_dir=src, out=dst))
else:
    # what a non-streaming converter starts from: every tensor materialised in memory
    loaded = safetensors.torch.load_file(src / "model.safetensors")
    state = {k: v.clone() for k, v in loaded.items()}
print(json.dumps({"baseline_mb": base, "peak_mb": peak_rss_mib(),
                  "seconds": time.perf_counter() - start}))
"""


QWEN3_30B_A3B = dict(
    hidden_size=2048,
    intermediate_size=6144,
    num_attention_heads=32,
    num_key_value_heads=4,
    head_dim=128,
    num_experts=128,
    num_experts_per_tok=8,
    moe_intermediate_size=768,
    norm_topk_prob=True,
    decoder_sparse_step=1,
    mlp_only_layers=[],
    vocab_size=151936,
    tie_word_embeddings=False,
)


def _moe_shapes(num_layers: int) -> list[tuple[str, tuple]]:
    c = QWEN3_30B_A3B
    h, d, e, f = c["hidden_size"], c["head_dim"], c["num_experts"], c["moe_intermediate_size"]
    heads, kv = c["num_attention_heads"], c["num_key_value_heads"]
    shapes = [("model.embed_tokens.weight", (c["vocab_size"], h))]
    for i in range(num_layers):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (heads * d, h)),
            (p + "self_attn.k_proj.weight", (kv * d, h)),
            (p + "self_attn.v_proj.weight", (kv * d, h)),
            (p + "self_attn.o_proj.weight", (h, heads * d)),
            (p + "self_attn.q_norm.weight", (d,)),
            (p + "self_attn.k_norm.weight", (d,)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate.weight", (e, h)),
        ]
        for x in range(e):
            q = f"{p}mlp.experts.{x}."
            shapes += [
                (q + "gate_proj.weight", (f, h)),
                (q + "up_proj.weight", (f, h)),
                (q + "down_proj.weight", (h, f)),
            ]
    return shapes + [("model.norm.weight", (h,)), ("lm_head.weight", (c["vocab_size"], h))]


def _qwen25_shapes(num_layers: int) -> list[tuple[str, tuple]]:
    h, f = QWEN25_05B["hidden_size"], QWEN25_05B["intermediate_size"]
    heads, kv = QWEN25_05B["num_attention_heads"], QWEN25_05B["num_key_value_heads"]
    head_dim = h // heads
    shapes = [("model.embed_tokens.weight", (QWEN25_05B["vocab_size"], h))]
    for i in range(num_layers):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (heads * head_dim, h)),
            (p + "self_attn.q_proj.bias", (heads * head_dim,)),
            (p + "self_attn.k_proj.weight", (kv * head_dim, h)),
            (p + "self_attn.k_proj.bias", (kv * head_dim,)),
            (p + "self_attn.v_proj.weight", (kv * head_dim, h)),
            (p + "self_attn.v_proj.bias", (kv * head_dim,)),
            (p + "self_attn.o_proj.weight", (h, heads * head_dim)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (f, h)),
            (p + "mlp.up_proj.weight", (f, h)),
            (p + "mlp.down_proj.weight", (h, f)),
        ]
    return shapes + [("model.norm.weight", (h,))]


def build_model(out: Path, num_layers: int, dtype: torch.dtype, model: str = "qwen2.5-0.5b"):
    """Random HF folder of `model`'s shapes, written tensor by tensor. Returns byte sizes."""
    from megatron_o1p.checkpoint.safetensors_io import write_sharded
    from megatron_o1p.testing.tiny_models import build_tiny_qwen2

    moe = model == "qwen3-30b-a3b"
    shapes = _moe_shapes(num_layers) if moe else _qwen25_shapes(num_layers)
    generator = torch.Generator().manual_seed(0)
    out.mkdir(parents=True)
    specs = [(name, dtype, shape) for name, shape in shapes]
    tensors = (
        (name, (torch.randn(shape, generator=generator) * 0.02).to(dtype)) for name, shape in shapes
    )
    write_sharded(out, specs, tensors, max_shard_bytes=1 << 40)
    config = dict(
        model_type="qwen3_moe" if moe else "qwen2",
        architectures=["Qwen3MoeForCausalLM" if moe else "Qwen2ForCausalLM"],
        num_hidden_layers=num_layers,
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        torch_dtype=str(dtype).replace("torch.", ""),
        **(QWEN3_30B_A3B if moe else QWEN25_05B),
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer_src = build_tiny_qwen2(out.parent / "tokenizer_src", num_hidden_layers=1)
    shutil.copy(tokenizer_src / "tokenizer.json", out / "tokenizer.json")
    element = torch.empty((), dtype=dtype).element_size()
    numel = {name: torch.Size(shape).numel() for name, shape in shapes}
    layer = sum(n for name, n in numel.items() if name.startswith("model.layers.0."))
    return {
        "model": sum(numel.values()) * element,
        "layer": layer * element,
        "embedding": numel["model.embed_tokens.weight"] * element,
    }


def run_child(what: str, src: Path, dst: Path) -> dict:
    env_cmd = [sys.executable, "-c", CHILD, what, str(src), str(dst)]
    proc = subprocess.run(
        env_cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "2",
            "HF_HUB_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
        },
    )
    if proc.returncode:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", choices=("qwen2.5-0.5b", "qwen3-30b-a3b"), default="qwen2.5-0.5b"
    )
    parser.add_argument("--num-layers", type=int, default=24)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="o1p_convert_mem_"))
    try:
        sizes = build_model(work / "hf", args.num_layers, getattr(torch, args.dtype), args.shape)
        target_mb = 1.5 * (sizes["layer"] + sizes["embedding"]) / 2**20
        model_mb = sizes["model"] / 2**20
        print(
            f"model: {args.num_layers} layers, {model_mb:.0f} MiB ({args.dtype}); largest layer "
            f"{sizes['layer'] / 2**20:.0f} MiB + embeddings {sizes['embedding'] / 2**20:.0f} MiB;"
            f" target peak <= {target_mb:.0f} MiB"
        )
        rows = [
            ("load_file (baseline)", run_child("load_file", work / "hf", work / "unused")),
            ("hf-to-mcore", run_child("hf-to-mcore", work / "hf", work / "mcore")),
            ("mcore-to-hf", run_child("mcore-to-hf", work / "mcore", work / "hf_back")),
        ]
        print(f"{'step':<22}{'peak above imports':>20}{'x model':>9}{'x target':>10}{'seconds':>9}")
        for name, r in rows:
            used = r["peak_mb"] - r["baseline_mb"]
            print(
                f"{name:<22}{used:>17.0f} MiB{used / model_mb:>9.2f}{used / target_mb:>10.2f}"
                f"{r['seconds']:>9.1f}"
            )
        baseline = rows[0][1]["peak_mb"] - rows[0][1]["baseline_mb"]
        for name, r in rows[1:]:
            used = r["peak_mb"] - r["baseline_mb"]
            ratio = used / ((sizes["layer"] + sizes["embedding"]) / 2**20)
            print(
                f"{name}: peak / (largest layer + embeddings) = {ratio:.2f} (target <= 1.5); "
                f"peak / load_file baseline = {used / baseline:.2f}; "
                f"peak / one embedding = {used / (sizes['embedding'] / 2**20):.2f}"
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
