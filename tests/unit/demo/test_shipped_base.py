"""The shipped base model is used only where it was trained with the current settings."""

from pathlib import Path

from megatron_o1p.demo import pipeline
from megatron_o1p.demo.shipped_base import (
    RECORD_NAME,
    SHIPPED_DIR,
    copy_shipped,
    ship_base,
    shipped_base_for,
)


def _trained(tmp_path) -> Path:
    hf = tmp_path / "trained"
    hf.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (hf / name).write_text(name)
    (hf / "notes.txt").write_text("not shipped")
    return hf


def test_shipped_only_for_the_settings_it_was_trained_with(tmp_path):
    settings = {"size": {"base_iters": 800, "check_probs": (0.35, 0.65)}, "recipe": {"layers": 4}}
    shipped = ship_base(_trained(tmp_path), settings, shipped=tmp_path / "shipped")
    assert sorted(p.name for p in shipped.iterdir()) == [
        "config.json",
        "model.safetensors",
        RECORD_NAME,
        "tokenizer.json",
    ]
    assert shipped_base_for(settings, shipped) == shipped
    other = {"size": {"base_iters": 500}, "recipe": {"layers": 4}}
    assert shipped_base_for(other, shipped) is None
    assert shipped_base_for(settings, tmp_path / "nothing") is None

    hf = copy_shipped(shipped, tmp_path / "work" / "base" / "hf")
    assert sorted(p.name for p in hf.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]


def test_the_shipped_model_in_the_repo_matches_the_current_full_size_settings():
    if not SHIPPED_DIR.exists():
        return  # nothing shipped: the demo trains its base model
    ctx = pipeline.DemoContext(
        Path("w"), pipeline.SIZES["full"], pipeline.DemoRecipe(), runner=None, stages=None
    )
    assert shipped_base_for(ctx.base_settings) == SHIPPED_DIR, (
        "the shipped base model was trained with other settings: retrain and ship it "
        "(see megatron_o1p/demo/shipped_base.py)"
    )
