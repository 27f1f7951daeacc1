"""`mm-pipeline run`: the whole graph on a user's own catalogue, its own data dir and Dagster instance."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dagster as dg
import pytest

from mm_pipeline.cli import main
from mm_pipeline.layout import Layout


@pytest.mark.slow
def test_run_materializes_a_catalogue_into_its_own_data_dir_and_instance(tmp_path):
    from mm_pipeline.sample import generate_sample

    catalogue = generate_sample(tmp_path / "catalogue", n=200, batches=1, seed=1).out_dir
    data, home = tmp_path / "data", tmp_path / "home"
    env = {**os.environ, "WANDB_MODE": "disabled", "MM_DATA_DIR": str(tmp_path / "elsewhere")}
    env.pop("DAGSTER_HOME", None)
    command = [sys.executable, "-m", "mm_pipeline.cli", "run", "--incoming", str(catalogue / "batches")]
    command += ["--images", str(catalogue / "images"), "--data-dir", str(data), "--dagster-home", str(home)]
    done = subprocess.run(
        [*command, "--epochs", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout

    assert re.search(r"^\[1/4\] running ingest_job\[batch_000\] \.\.\.$", out, re.M)
    assert re.search(r"^\[4/4\] evaluation_job finished in \d+ s$", out, re.M)
    accepted, rejected = map(int, re.search(r"^batch_000\s+(\d+)\s+(\d+)$", out, re.M).groups())
    assert accepted + rejected == 200 and rejected > 0
    checks = dict(re.findall(r"^(\w+_(?:gate|parity))\s+(pass|FAIL)", out, re.M))
    assert len(checks) == 8  # onnx_parity + six task gates + duplicates_gate
    assert re.search(rf"^elapsed: \d+ s; runs recorded in the Dagster instance at {home}$", out, re.M)
    assert "Traceback" not in done.stderr

    layout = Layout(data)  # the files stay, under --data-dir and nowhere else
    assert layout.embeddings("batch_000").exists()
    assert layout.metric_summary("duplicates").exists() and layout.metric_summary("category").exists()
    assert not (tmp_path / "elsewhere").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 4  # ingest, model, embeddings, evaluation


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--incoming", "{tmp}/absent", "--images", "{tmp}"], "--incoming {tmp}/absent is not a directory"),
        (["--incoming", "{tmp}", "--images", "{tmp}"], "no batch files (*.parquet) in {tmp}"),
        (["--incoming", "{tmp}", "--images", "{tmp}/absent"], "--images {tmp}/absent is not a directory"),
    ],
)
def test_run_refuses_missing_inputs_in_one_line(tmp_path, capsys, arguments, message):
    code = main(["run", *(a.format(tmp=tmp_path) for a in arguments), "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {message.format(tmp=tmp_path)}"
    assert not (tmp_path / "data").exists()


def test_run_refuses_a_folder_whose_every_batch_name_is_refused(tmp_path, capsys):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "wb_export...v2.parquet").write_bytes(b"")
    code = main(
        ["run", "--incoming", str(incoming), "--images", str(tmp_path), "--data-dir", str(tmp_path / "d")]
    )
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: no usable batch file in {incoming}: ")
    assert "wb_export...v2.parquet" in error and "partition-range separator" in error
    assert "\n" not in error and not (tmp_path / "d").exists()


def test_run_refuses_zero_epochs(tmp_path, capsys):
    (tmp_path / "batch.parquet").write_bytes(b"")
    args = ["run", "--incoming", str(tmp_path), "--images", str(tmp_path), "--epochs", "0"]
    with pytest.raises(SystemExit) as exited:  # an argparse usage error, in one line
        main(args)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "mm-pipeline run: error: argument --epochs: must be at least 1, got 0; see mm-pipeline run --help"
    )
