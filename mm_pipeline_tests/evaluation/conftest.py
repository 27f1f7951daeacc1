"""Fixtures of the evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest

from mm_pipeline.evaluation.probes import solvers


@pytest.fixture
def pca_fits(monkeypatch) -> list[set[bytes]]:
    """The training rows (as bytes) of every ``fit_pca`` call made while the test runs (folds may be fitted
    side by side, so in any order: see :func:`fitted_on_training_folds`)."""
    fitted_on: list[set[bytes]] = []
    original = solvers.fit_pca

    def recording_fit_pca(train, *args, **kwargs):
        fitted_on.append({row.tobytes() for row in train.numpy()})
        return original(train, *args, **kwargs)

    monkeypatch.setattr(solvers, "fit_pca", recording_fit_pca)
    return fitted_on


def fitted_on_training_folds(
    fitted_on: list[set[bytes]], x: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
) -> bool:
    """Whether the recorded fits are one per fold, each on exactly that fold's training rows of ``x``."""
    training = sorted(sorted(row.tobytes() for row in x[train_rows]) for train_rows, _ in folds)
    return sorted(sorted(rows) for rows in fitted_on) == training
