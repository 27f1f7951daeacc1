"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest

from mm_pipeline.evaluation.probes import solvers


@pytest.fixture
def pca_fits(monkeypatch) -> list[set[bytes]]:
    """The training rows (as bytes) of every ``fit_pca`` call made while the test runs, in call order."""
    fitted_on: list[set[bytes]] = []
    original = solvers.fit_pca

    def recording_fit_pca(train, *args, **kwargs):
        fitted_on.append({row.tobytes() for row in train.numpy()})
        return original(train, *args, **kwargs)

    monkeypatch.setattr(solvers, "fit_pca", recording_fit_pca)
    return fitted_on
