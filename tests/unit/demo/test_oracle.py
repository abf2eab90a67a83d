"""The oracle table from evaluation files: lengths, avoidable share, Wilson and McNemar."""

import pytest

from megatron_o1p.demo.oracle import format_report, oracle_report
from megatron_o1p.demo.task import TaskConfig, oracle_length
from tests.unit.demo.eval_files import write_eval

SLIPPING = "a3,b5,c9,d2,e7="  # the first pass slips on e: the oracle checks once


@pytest.fixture
def eval_dir(tmp_path):
    write_eval(
        tmp_path / "baseline",
        {"n2": [("a7,b7=", True, 40), ("a1,b2=", True, 40)], "n5": [(SLIPPING, True, 100)]},
    )
    write_eval(
        tmp_path / "o1-pruner",
        {"n2": [("a7,b7=", True, 18), ("a1,b2=", False, 15)], "n5": [(SLIPPING, True, 100)]},
    )
    return tmp_path


def test_oracle_report_per_level_and_over_all_items(eval_dir):
    task = TaskConfig()
    assert oracle_length("a7,b7=", task) == 18 and oracle_length("a1,b2=", task) == 15
    n5_oracle = oracle_length(SLIPPING, task)
    n2, n5, total = oracle_report(eval_dir / "baseline", eval_dir / "o1-pruner", task)

    assert (n2.level, n2.items, n2.baseline_length, n2.oracle_length) == ("n2", 2, 40.0, 16.5)
    assert n2.model_length == 16.5 and n2.removed == 1.0
    assert (n2.baseline_correct, n2.model_correct, n2.p_value) == (2, 1, 1.0)
    assert n5.removed == 0.0  # as long as the baseline

    assert total.level == "all" and total.items == 3
    assert total.baseline_length == pytest.approx(180 / 3)
    assert total.oracle_length == pytest.approx((33 + n5_oracle) / 3)
    assert total.model_length == pytest.approx(133 / 3)
    assert total.removed == pytest.approx((180 - 133) / (180 - 33 - n5_oracle))

    text = format_report([n2, n5, total], "o1-pruner")
    assert "n2" in text.splitlines()[2] and "100%" in text.splitlines()[2]


def test_claims_against_the_oracle(eval_dir):
    rows = {r["claim"]: r for r in _oracle_claims_only(eval_dir)}
    removed = rows["greedy: >= 80% of the avoidable tokens removed"]
    assert removed["ok"] is False  # n5 kept its avoidable tokens
    assert removed["why"] == "removed per level: n5 0% (100.0 tokens)"
    accuracy = rows["greedy accuracy inside the baseline's 95% interval (or above it)"]
    # 3/3 right: Wilson low = 3 / (3 + z^2) = 3 / 6.84146 = 0.4385; 2/3 = 0.667 is inside
    assert accuracy["ok"] is True and "[43.9, 100.0]" in accuracy["measured"]


def test_a_model_evaluated_on_other_items_is_refused(eval_dir, tmp_path):
    write_eval(tmp_path / "other", {"n2": [("a7,b7=", True, 18)], "n5": [(SLIPPING, True, 9)]})
    with pytest.raises(ValueError, match="not the baseline's items"):
        oracle_report(eval_dir / "baseline", tmp_path / "other", TaskConfig())


def _oracle_claims_only(eval_dir):
    from megatron_o1p.demo.report import _oracle_claims

    return _oracle_claims(eval_dir, "o1-pruner", TaskConfig())


def test_a_miss_names_the_levels_it_comes_from():
    from megatron_o1p.demo.oracle import LevelResult
    from megatron_o1p.demo.report import _accuracy_drops, format_claims

    fell = LevelResult("n4", 250, 86.0, 45.0, 80.0, 250, 238, 0.00049)
    noise = LevelResult("n6", 250, 128.0, 85.0, 128.0, 249, 245, 0.12)  # p > 0.05: not named
    why = _accuracy_drops([fell, noise])
    assert why == "accuracy fell on n4 100.0% -> 95.2% (p = 0.00049)"
    text = format_claims(
        [
            {"claim": "c", "measured": "m", "ok": False, "why": why},
            {"claim": "d", "measured": "m", "ok": True, "why": "not printed on a PASS"},
        ]
    )
    assert text.splitlines()[1:] == [
        "  [MISS] c: m",
        "         accuracy fell on n4 100.0% -> 95.2% (p = 0.00049)",
        "  [PASS] d: m",
    ]
