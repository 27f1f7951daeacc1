"""Interrupted and concurrent materializations lose nothing and never expose partial files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_pipeline.catalog.contract import validate_batch
from mm_pipeline.layout import Layout
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline_tests.conftest import write_jpeg

RUN_PARTITION = """
import sys, dagster as dg
from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.resources import PipelineSettings
data, incoming, images, batch, home = sys.argv[1:6]
settings = PipelineSettings(data_dir=data, incoming_dir=incoming, images_dir=images, workers=1)
with dg.DagsterInstance.local_temp(tempdir=home) as instance:
    instance.add_dynamic_partitions("catalogue_batches", [batch])
    result = build_defs(settings).resolve_job_def("ingest_job").execute_in_process(
        instance=instance, partition_key=batch, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def start_run(tmp_path: Path, sample: Path, batch: str, home: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    args = [str(tmp_path / "data"), str(sample / "batches"), str(sample / "images"), batch, str(home)]
    return subprocess.Popen(
        [sys.executable, "-c", RUN_PARTITION, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def outputs(tmp_path: Path, batch: str) -> dict[str, bytes]:
    layout = Layout(tmp_path / "data")
    files = [
        layout.raw_accepted(batch),
        layout.raw_rejected(batch),
        layout.cleaned_text(batch),
        layout.image_tensors(batch),
    ]
    return {f.name: f.read_bytes() for f in files}


def test_killed_mid_write_keeps_previous_version_then_rerun_is_identical(tmp_path, small_sample):
    batch = "batch_000"
    first = start_run(tmp_path, small_sample, batch, tmp_path / "home")
    assert first.wait(timeout=600) == 0, first.stderr.read()
    before = outputs(tmp_path, batch)
    tensors_dir = tmp_path / "data" / "store" / "image_tensors"

    victim = start_run(tmp_path, small_sample, batch, tmp_path / "home")
    deadline = time.monotonic() + 300
    while not list(tensors_dir.glob(".*.tmp")) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "the run finished before it could be interrupted"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert outputs(tmp_path, batch) == before  # previous version intact and readable
    assert open_tensor_store(tensors_dir / f"{batch}.npy").shape[0] > 0
    leftovers = list(tensors_dir.glob(".*.tmp"))
    assert leftovers and all(p.name.startswith(".") for p in leftovers)  # hidden: no reader ever picks them

    rerun = start_run(tmp_path, small_sample, batch, tmp_path / "home")
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    assert outputs(tmp_path, batch) == before  # idempotent: byte-identical
    assert not list(tensors_dir.glob(".*.tmp"))  # the killed run's temporaries were swept


def test_two_concurrent_runs_of_one_partition_cannot_corrupt_it(tmp_path, small_sample):
    batch = "batch_001"
    runs = [start_run(tmp_path, small_sample, batch, tmp_path / f"home{i}") for i in range(2)]
    assert [r.wait(timeout=600) for r in runs] == [0, 0]
    together = outputs(tmp_path, batch)
    solo = tmp_path / "solo"
    solo.mkdir()
    assert start_run(solo, small_sample, batch, solo / "home").wait(timeout=600) == 0
    assert outputs(solo, batch) == together
    layout = Layout(tmp_path / "data")
    accepted = pd.read_parquet(layout.raw_accepted(batch))
    assert open_tensor_store(layout.image_tensors(batch)).shape[0] == len(accepted)


NM_COLUMNS = [  # each batch stores nm in one parquet type
    (pa.int64(), st.one_of(st.integers(-3, 30), st.integers(-(2**63), 2**63 - 1))),
    (pa.float64(), st.one_of(st.integers(-3, 30).map(float), st.floats(), st.sampled_from([1e30, 2.0**63]))),
    (
        pa.string(),
        st.one_of(
            st.integers(-3, 30).map(str),
            st.integers(2**63, 2**70).map(str),
            st.text(max_size=6),
            st.sampled_from([" 4 ", "1e30", "0x10"]),
        ),
    ),
]
DESCRIPTION_COLUMNS = [
    (
        pa.string(),
        st.one_of(
            st.text(max_size=40),
            st.text(st.characters(categories=["Cc", "Cf", "Zs"]), max_size=20),
            st.just("д" * 25_000),
        ),
    ),
    (pa.binary(), st.binary(max_size=40)),
]
IMAGE_PATHS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        ["", "0.jpg", "sub/../2.jpg", "../images/4.jpg", "../../etc/passwd", "/etc/passwd", "..", "a" * 5000]
    ),
    st.sampled_from(["x\x00.jpg", "../" * 300 + "etc/passwd"]),
)


@st.composite
def batches(draw) -> pa.Table:
    n = draw(st.integers(0, 8))

    def column(arrow_type: pa.DataType, elements: st.SearchStrategy) -> pa.Array:
        return pa.array(draw(st.lists(st.one_of(st.none(), elements), min_size=n, max_size=n)), arrow_type)

    return pa.table(
        {
            "nm": column(*draw(st.sampled_from(NM_COLUMNS))),
            "title": column(pa.string(), st.one_of(st.text(max_size=12), st.sampled_from(["🔥", "<br>"]))),
            "description": column(*draw(st.sampled_from(DESCRIPTION_COLUMNS))),
            "image_path": column(pa.string(), IMAGE_PATHS),
            "price": column(pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
            "isadult": column(pa.bool_(), st.booleans()),
        }
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=batches())
def test_validation_accounts_for_every_row(tmp_path, table):
    images = tmp_path / "images"
    for nm in range(0, 30, 2):
        if not (images / f"{nm}.jpg").exists():
            write_jpeg(images / f"{nm}.jpg")
    path = tmp_path / "batch.parquet"
    pq.write_table(table, path)
    result = validate_batch(path, images)
    assert len(result.accepted) + len(result.rejected) == table.num_rows
    rows = sorted([*result.accepted["source_row"], *result.rejected["source_row"]])
    assert rows == list(range(table.num_rows))
    assert result.accepted["nm"].is_unique
    assert (result.rejected["reject_reason"].str.len() > 0).all()
    assert (result.rejected["source_file"] == "batch.parquet").all()
    for image in map(Path, result.accepted["image_file"]):  # traversal never yields an accepted image
        assert image.is_relative_to(images.resolve()) and image.is_file()
