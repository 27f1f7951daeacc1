"""W&B runs go under MM_DATA_DIR by default, never ./wandb; online without a key fails at once, with what to
set (issue 16, item 9)."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
import wandb

from mm_pipeline.defs.resources import PipelineSettings, build_wandb_resource
from mm_pipeline.tracking import PLACEHOLDER_KEY, TrackingConfigError, wandb_setup

WANDB_VARIABLES = ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY", "WANDB_BASE_URL")


def test_defaults_are_offline_under_the_data_dir(tmp_path):
    setup = wandb_setup({}, tmp_path / "data")
    assert (setup.mode, setup.dir, setup.api_key, setup.online) == (
        "offline",
        tmp_path / "data" / "wandb",
        PLACEHOLDER_KEY,
        False,
    )
    assert wandb_setup({"WANDB_DIR": "/runs", "WANDB_MODE": "Disabled"}, "data").dir == Path("/runs")
    assert wandb_setup({"WANDB_MODE": "disabled"}, "data").mode == "disabled"
    online = wandb_setup({"WANDB_MODE": "online", "WANDB_API_KEY": "k" * 40}, "data")
    assert online.online and online.api_key == "k" * 40


@pytest.mark.parametrize(
    "env",
    [
        {"WANDB_MODE": "online"},
        {"WANDB_MODE": "online", "WANDB_API_KEY": "  "},
        {"WANDB_MODE": "online", "WANDB_API_KEY": PLACEHOLDER_KEY},
        {"WANDB_MODE": "shared"},
    ],
)
def test_online_without_a_key_is_refused_with_what_to_set(tmp_path, env):
    with pytest.raises(TrackingConfigError) as raised:
        wandb_setup(env, tmp_path)
    message = str(raised.value)
    assert message.startswith(f"WANDB_MODE={env['WANDB_MODE']} needs WANDB_API_KEY")
    assert "WANDB_MODE=offline" in message and str(tmp_path / "wandb") in message and "\n" not in message


def test_a_misspelt_mode_is_refused():
    with pytest.raises(TrackingConfigError, match="WANDB_MODE='ofline' is not a W&B mode"):
        wandb_setup({"WANDB_MODE": "ofline"}, "data")


@pytest.fixture
def clean_wandb_env(tmp_path, monkeypatch):
    """No W&B variable set; W&B's own cache and config kept in tmp_path; the working directory is tmp_path."""
    for variable in WANDB_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    monkeypatch.chdir(tmp_path)
    wandb.teardown()  # W&B keeps the settings of its first use in a process
    yield monkeypatch
    wandb.teardown()


def resources(data_dir: Path):
    return dg.build_resources(
        {"settings": PipelineSettings(data_dir=str(data_dir)), "wandb_resource": build_wandb_resource()}
    )


def test_a_run_that_needs_wandb_fails_at_once_when_online_has_no_key(tmp_path, clean_wandb_env):
    clean_wandb_env.setenv("WANDB_MODE", "online")

    @dg.asset
    def tracked(wandb_resource: dg.ResourceParam[dict]) -> None:
        raise AssertionError("never reached: the resource refuses first")

    started = time.perf_counter()
    result = dg.materialize(
        [tracked],
        resources={
            "settings": PipelineSettings(data_dir=str(tmp_path / "data")),
            "wandb_resource": build_wandb_resource(),
        },
        raise_on_error=False,
    )
    assert time.perf_counter() - started < 10  # no login attempt, no W&B service timeout
    assert not result.success
    # resource initialization failed: the run's engine event carries the error and its cause, our message
    errors = [
        e.event_specific_data.error
        for e in result.all_events
        if getattr(e.event_specific_data, "error", None)
    ]
    messages = [m for error in errors for m in (error.message, *(c.message for c in _causes(error)))]
    assert any("WANDB_MODE=online needs WANDB_API_KEY" in m for m in messages), messages
    assert not (tmp_path / "data" / "wandb").exists() and not (tmp_path / "wandb").exists()


def _causes(error):
    while error.cause is not None:
        error = error.cause
        yield error


def test_offline_runs_are_written_under_the_data_dir_not_the_working_directory(tmp_path, clean_wandb_env):
    data = tmp_path / "data"
    with resources(data) as built:
        client = built.wandb_resource
        assert (client["mode"], client["dir"]) == ("offline", str(data / "wandb"))
        run = client["sdk"].init(project="mm_pipeline", job_type="fine_tune", dir=client["dir"])
        run.log({"train/loss": 1.5})
        run.finish()
    [offline_run] = (data / "wandb" / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("run-*.wandb"))
    assert not (tmp_path / "wandb").exists()
