"""A task's table against its references, and the gate verdicts read from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_pipeline.evaluation.tasks import INSUFFICIENT, EvalSet, evaluate_task, judge


def eval_set(n: int = 300, seed: int = 0) -> EvalSet:
    """Three categories; fine-tuned vectors carry the category, base vectors are noise."""
    rng = np.random.default_rng(seed)
    names = np.array(["Обувь", "Книги", "Спорт"])
    codes = rng.integers(3, size=n)
    products = pd.DataFrame(
        {
            "nm": np.arange(n),
            "category": names[codes],
            "sub_category": names[codes],
            "title": [f"товар {i}" for i in range(n)],
            "description": "",
            "text": [f"товар {i}" for i in range(n)],
            "isadult": False,
            "price": rng.uniform(100, 5000, n),
        }
    )
    centres = rng.normal(size=(3, 16)) * 0.6
    tuned = {"image": centres[codes] + rng.normal(size=(n, 16)), "text": rng.normal(size=(n, 16))}
    base = {"image": rng.normal(size=(n, 16)), "text": rng.normal(size=(n, 16))}
    return EvalSet.build(products, tuned, base)


def test_task_table_has_references_and_a_paired_noise_estimate():
    result = evaluate_task("category", eval_set())
    assert result.status == "ok"
    assert set(result.table["model"]) == {"fine_tuned", "base", "tfidf"}
    headline = result.headline
    assert headline["fused_f1"] > 0.8 and headline["base_fused_f1"] < 0.5
    assert headline["fused_f1_minus_base"] == pytest.approx(headline["fused_f1"] - headline["base_fused_f1"])
    assert 0.005 < headline["fused_f1_minus_base_se"] < 0.1 and 0 < headline["fused_f1_se"] < 0.1


def test_a_task_without_labels_reports_insufficient_data():
    result = evaluate_task("isadult", eval_set())  # every product is "not adult": one class
    assert result.status == INSUFFICIENT and "one class" in result.reason
    assert judge(result.summary(), 0.9, 0.0).passed


def summary(fused: float, base: float, se: float = 0.0) -> dict:
    """A task summary whose F1 and F1 difference both have standard error ``se``."""
    return {
        "status": "ok",
        "fused_f1": fused,
        "fused_f1_se": se,
        "fused_f1_minus_base": fused - base,
        "fused_f1_minus_base_se": se,
    }


@pytest.mark.parametrize(
    ("fused", "base", "se", "passed", "reason"),
    [
        (0.80, 0.70, 0.02, True, ""),
        (0.40, 0.30, 0.02, False, "below the floor 0.500 (noise 0.033)"),
        (0.48, 0.40, 0.02, True, ""),  # 0.02 under the floor is inside 1.645 x 0.02
        (0.48, 0.40, 0.00, False, "below the floor 0.500 (noise 0.000)"),
        (0.60, 0.70, 0.00, False, "trails the base model by 0.100"),
        (0.60, 0.70, 0.02, False, "trails the base model by 0.100 (allowed 0.050 + noise 0.033)"),
        (0.60, 0.67, 0.02, True, ""),  # 0.07 drop is inside 0.05 + 1.645 x 0.02
    ],
)
def test_gate_verdicts(fused, base, se, passed, reason):
    verdict = judge(summary(fused, base, se), min_f1=0.5, max_drop_vs_base=0.05)
    assert verdict.passed is passed
    assert reason in "; ".join(verdict.reasons)


def test_noise_z_zero_makes_thresholds_exact():
    assert not judge(summary(0.60, 0.67, 0.02), 0.5, 0.05, noise_z=0.0).passed
    assert not judge(summary(0.49, 0.40, 0.05), 0.5, 0.05, noise_z=0.0).passed
