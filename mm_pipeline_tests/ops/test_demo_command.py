"""`mm-pipeline demo` (what `make demo` runs) end to end on a small generated catalogue."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

from mm_pipeline.layout import Layout
from mm_pipeline_tests.conftest import REPO


def test_demo_materializes_the_whole_graph_and_prints_its_summary(tmp_path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MM_DATA_DIR": str(tmp_path / "data"),
        "MM_TRAIN_EPOCHS": "1",
        "WANDB_MODE": "disabled",
    }
    (tmp_path / "home").mkdir()
    sample = tmp_path / "sample"
    command = [sys.executable, "-m", "mm_pipeline.cli", "demo", "--out", str(sample), "--n", "300"]
    done = subprocess.run(
        [*command, "--batches", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout

    layout = Layout(tmp_path / "data")
    for batch in ("batch_000", "batch_001"):
        accepted, rejected = re.search(rf"^{batch}\s+(\d+)\s+(\d+)$", out, re.M).groups()
        source = pd.read_parquet(sample / "batches" / f"{batch}.parquet")
        assert int(accepted) + int(rejected) == len(source) and int(rejected) > 0
        assert len(pd.read_parquet(layout.raw_accepted(batch))) == int(accepted)
        assert layout.embeddings(batch).exists()

    checks = dict(re.findall(r"^(\w+_(?:gate|parity))\s+(pass|FAIL)", out, re.M))
    assert len(checks) == 8  # onnx_parity + six task gates + duplicates_gate
    if all(v == "pass" for v in checks.values()):
        assert f"published_embeddings: {layout.published_embeddings}" in out
    else:
        assert "published_embeddings: NOT updated" in out
        assert not layout.published_embeddings.exists()
    assert re.search(r"^elapsed: \d+ s", out, re.M)
    assert "Traceback" not in done.stderr

    # the summary's search hint is a command line that works on the run's data dir
    hint = re.search(r"^search the served catalogue: (.*)$", out, re.M).group(1)
    assert shlex.split(hint)[0] == str(Path(sys.executable).with_name("mm-pipeline"))
    searched = subprocess.run(
        shlex.split(hint),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert searched.returncode == 0, searched.stderr[-2000:]
    assert searched.stdout.startswith("nearest to «") and len(searched.stdout.splitlines()) == 11
