"""The UI end to end: a real webserver, a run launched over GraphQL, the asset pages in headless Chromium.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run), driven by Playwright's Python client;
Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline_tests.ops.conftest import (
    LOOPBACK,
    VENV_BIN,
    free_port,
    log_tail,
    spawn,
    stop_process,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]
LOCATION = "mm_pipeline.definitions"  # workspace.yaml's python_module
BATCH = "batch_000"
STARTUP_TIMEOUT = 240  # the webserver's code server imports torch and the project on two shared cores
RUN_TIMEOUT = 300
PAGE_TIMEOUT_MS = 90_000

LOCATION_STATUS = """
query { workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


def graphql(base: str, query: str) -> dict:
    response = requests.post(f"{base}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def location_loaded(base: str) -> bool:
    try:
        entries = graphql(base, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    except requests.RequestException:
        return False
    entry = next((e for e in entries if e["name"] == LOCATION), None)
    if entry is None or entry["loadStatus"] != "LOADED":
        return False
    error = entry["locationOrLoadError"]
    assert error["__typename"] == "RepositoryLocation", f"code location failed to load: {error}"
    return True


def dismiss_community_dialog(page) -> None:
    """A fresh browser profile gets a "Join the Dagster community" dialog over the first page: skip it, so
    that the screenshots show the page (the browser remembers the choice for later pages)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=10_000)
    except PlaywrightTimeout:
        return
    skip.click()
    skip.wait_for(state="hidden")


@pytest.fixture
def webserver(tmp_path, small_sample):
    """dagster-webserver on 127.0.0.1 for ``make ui``'s workspace, over a copy of the sample catalogue."""
    sample = tmp_path / "sample"
    shutil.copytree(small_sample / "batches", sample / "batches")
    shutil.copytree(small_sample / "images", sample / "images")
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Runs start at once (no daemon to dequeue them, no sensors adding runs of their own).
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    # Dynamic partitions live in the instance: register them before the server starts, like the sensor would.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(catalogue_batches.name, ["batch_000", "batch_001"])
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MM_DATA_DIR": str(tmp_path / "data"),
        "MM_INCOMING_DIR": str(sample / "batches"),
        "MM_IMAGES_DIR": str(sample / "images"),
        "MM_WORKERS": "1",
        "WANDB_MODE": "disabled",
    }
    port = free_port()
    log = tmp_path / "webserver.log"
    argv = [str(VENV_BIN / "dagster-webserver"), "-h", LOOPBACK, "-p", str(port), "-w", "workspace.yaml"]
    server = spawn(argv, log, env=env)
    base = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_for(
                lambda: location_loaded(base),
                STARTUP_TIMEOUT,
                "webserver code location",
                proc=server,
                interval=1,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_tail(log)}") from None
        yield base, port, tmp_path, log
    finally:
        stop_process(server)


def test_launch_over_graphql_and_see_it_in_chromium(webserver):
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    base, port, tmp_path, log = webserver
    client = DagsterGraphQLClient(LOOPBACK, port_number=port)
    run_id = client.submit_job_execution(
        "ingest_job",
        repository_location_name=LOCATION,
        tags={"dagster/partition": BATCH},
        # One run-worker process instead of one per step: each process imports torch and the project.
        run_config={"execution": {"config": {"in_process": {}}}},
    )
    deadline = time.monotonic() + RUN_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id)
        except DagsterGraphQLClientError:
            status = None
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            break
        time.sleep(2)
    assert status == dg.DagsterRunStatus.SUCCESS, f"run {run_id} ended {status}:\n{log_tail(log)}"

    # What the page must show: the materialization's own metadata, read back over GraphQL.
    materialization = graphql(
        base,
        '{ assetOrError(assetKey: {path: ["raw_products"]}) { ... on Asset { assetMaterializations(limit: 1) {'
        " runId partition metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }",
    )["assetOrError"]["assetMaterializations"][0]
    assert (materialization["runId"], materialization["partition"]) == (run_id, BATCH)
    rows_accepted = next(
        e["intValue"] for e in materialization["metadataEntries"] if e["label"] == "rows_accepted"
    )
    # ... and the run wrote its files where the server's environment pointed it.
    accepted = PipelineSettings(data_dir=str(tmp_path / "data")).layout.raw_accepted(BATCH)
    assert rows_accepted == len(pd.read_parquet(accepted)) > 0

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright  # dev extra; drives Debian's Chromium, downloads nothing

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)

            # The ingest group's asset graph: its three assets as nodes (raw_products one of two partitions
            # filled by the run) and edges out to the model and embedding assets of other groups.
            page.goto(f"{base}/locations/{LOCATION}/asset-groups/ingest")
            dismiss_community_dialog(page)
            for name in ("raw_products", "cleaned_text", "image_tensors", "fine_tuned_model", "embeddings"):
                page.get_by_text(name, exact=True).first.wait_for(state="visible")
            page.get_by_text("50% filled").first.wait_for(state="visible")
            page.screenshot(path=str(shots / "asset_graph.png"))

            # The asset's page for the partition just materialized: its run and its metadata table.
            page.goto(f"{base}/assets/raw_products?view=partitions&partition={BATCH}")
            row = page.locator("tr", has=page.get_by_text("rows_accepted", exact=True))
            row.first.wait_for(state="visible")
            assert row.first.locator("td").nth(1).inner_text().strip() == str(rows_accepted)
            page.get_by_text(run_id[:8], exact=True).first.wait_for(state="visible")
            page.screenshot(path=str(shots / "raw_products.png"), full_page=True)
        finally:
            browser.close()
    assert (shots / "asset_graph.png").stat().st_size > 10_000
    assert (shots / "raw_products.png").stat().st_size > 10_000
