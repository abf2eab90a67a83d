"""The ablation's rows and table, from evaluation folders (values by hand)."""

import pytest

from megatron_o1p.demo import ablation
from megatron_o1p.demo.ablation import TRAINING_FIELDS, VARIANTS, ablation_row, format_ablation
from megatron_o1p.demo.settings import DemoConfig, DemoRecipe
from megatron_o1p.demo.task import TaskConfig, oracle_length
from megatron_o1p.errors import ConfigError
from tests.unit.demo.eval_files import write_eval

SLIPPING = "a3,b5,c9,d2,e7="


def test_ablation_row_and_table(tmp_path):
    task = TaskConfig()
    write_eval(
        tmp_path / "baseline",
        {"n2": [("a7,b7=", True, 40), ("a1,b2=", True, 40)], "n5": [(SLIPPING, True, 100)]},
    )
    write_eval(
        tmp_path / "model",
        {"n2": [("a7,b7=", True, 18), ("a1,b2=", False, 15)], "n5": [(SLIPPING, True, 100)]},
    )
    row = ablation_row(tmp_path / "baseline", tmp_path / "model", task, "token-symmetric", 2)
    oracle = (18 + 15 + oracle_length(SLIPPING, task)) / 3
    assert row["accuracy"] == pytest.approx(2 / 3) and row["length"] == pytest.approx(133 / 3)
    assert row["removed"] == pytest.approx((60 - 133 / 3) / (60 - oracle))
    # n2: dLength (40 - 16.5)/40 = 0.5875, dAcc -0.5 -> 0.5875 - 5 * 0.5; n5: 0; mean of the two
    assert row["aes"] == pytest.approx((0.5875 - 2.5) / 2)

    lines = format_ablation([row]).splitlines()
    assert lines[2] == "| baseline (base model) | - | 100.0 | 60.0 | 0% | 0.00 |"
    assert lines[3].startswith(f"| oracle (check only where needed) | - | 100.0 | {oracle:.1f} |")
    assert (
        lines[4] == f"| token-symmetric | 2 | 66.7 | 44.3 | {100 * row['removed']:.0f}% | -0.96 |"
    )


def test_variants_change_only_the_ratio_and_the_clip():
    for changes in VARIANTS.values():
        assert set(changes) == {"o1p_ratio", "o1p_epsilon_high"} <= set(TRAINING_FIELDS)
        DemoRecipe(**changes)  # every name is a recipe field


def test_ablation_flags():
    with pytest.raises(ConfigError, match="--ablation-rounds must be >= 1"):
        DemoConfig(ablation=True, ablation_rounds=0)
    with pytest.raises(ConfigError, match="separate demos"):
        DemoConfig(ablation=True, conversion_only=True)


def test_variants_train_round_one_on_the_demos_data_then_sample_their_own(
    tmp_path, fake_o1p, monkeypatch
):
    monkeypatch.setattr(ablation, "ablation_row", lambda *args: {"variant": args[3]})
    variants = {name: VARIANTS[name] for name in ("token-symmetric", "sequence-clip-higher")}
    ablation.run_ablation(tmp_path, size="ci", rounds=2, variants=variants, log=lambda line: None)
    samples = [a[a.index("--out") + 1] for a in fake_o1p if a[0] == "sample"]
    # one round-1 sample for both variants (the demo's), then one round 2 each
    assert samples == [
        str(tmp_path / "round1" / "rollouts"),
        str(tmp_path / "ablation" / "token-symmetric" / "round2" / "rollouts"),
        str(tmp_path / "ablation" / "sequence-clip-higher" / "round2" / "rollouts"),
    ]
    pruner_data = [
        a[a.index("--data") + 1] for a in fake_o1p if a[:3] == ["train", "--loss", "o1-pruner"]
    ]
    first = str(tmp_path / "round1" / "data" / "train.parquet")
    assert pruner_data == [
        first,
        str(tmp_path / "ablation" / "token-symmetric" / "round2" / "data" / "train.parquet"),
        first,
        str(tmp_path / "ablation" / "sequence-clip-higher" / "round2" / "data" / "train.parquet"),
    ]


def test_a_variant_that_changes_the_data_is_refused(tmp_path):
    with pytest.raises(
        ValueError, match=r"'lambda-1' changes \['lam'\]: a variant may change only"
    ):
        ablation.run_ablation(tmp_path, size="ci", variants={"lambda-1": {"lam": 1.0}})
