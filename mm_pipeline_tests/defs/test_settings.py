"""Pipeline settings come from MM_* environment variables, each documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from mm_pipeline.cli import _onnx_settings
from mm_pipeline.defs.resources import ENV_VARIABLES, PipelineSettings
from mm_pipeline_tests.defs.conftest import make_pipeline

README = Path(__file__).parents[2] / "README.md"


def test_environment_variables_set_their_fields_and_unset_ones_keep_defaults():
    env = {
        "MM_DATA_DIR": "/srv/mm",
        "MM_IMAGE_SIZE": "384",
        "MM_RUCLIP_DIR": "/models/ruclip-vit-base-patch32-384",
        "MM_EVAL_FRACTION": "0.25",
        "MM_WORKERS": "8",
    }
    settings = PipelineSettings.from_env(env)
    assert settings.layout.store == Path("/srv/mm/store")
    assert (settings.image_size, settings.eval_fraction, settings.workers) == (384, 0.25, 8)
    assert settings.ruclip_dir == "/models/ruclip-vit-base-patch32-384"
    assert settings.onnx_variant == PipelineSettings().onnx_variant == "auto"
    assert settings.incoming_dir == PipelineSettings().incoming_dir


def test_a_malformed_variable_is_named_in_the_error():
    with pytest.raises(ValueError, match="MM_IMAGE_SIZE='large' is not a valid int"):
        PipelineSettings.from_env({"MM_IMAGE_SIZE": "large"})


def test_every_variable_is_documented():
    readme = README.read_text()
    assert [v for v in ENV_VARIABLES.values() if f"`{v}`" not in readme] == []


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_workers_that_are_not_a_positive_integer_are_refused_as_the_cli_refuses_them(value, monkeypatch):
    message = f"MM_WORKERS='{value}' is not a positive integer"
    with pytest.raises(ValueError, match=re.escape(message)):
        PipelineSettings.from_env({"MM_WORKERS": value})
    monkeypatch.setenv("MM_WORKERS", value)
    with pytest.raises(ValueError, match=re.escape(message)):
        _onnx_settings()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("workers", 0, "workers=0 (MM_WORKERS) is not a positive integer"),
        ("image_size", -96, "image_size=-96 (MM_IMAGE_SIZE) is not a positive integer"),
        ("train_epochs", -1, "train_epochs=-1 (MM_TRAIN_EPOCHS) is not 0 (the recipe's own)"),
        ("eval_fraction", 1.0, "eval_fraction=1.0 (MM_EVAL_FRACTION) is not a fraction strictly between"),
        ("eval_fraction", 0.0, "eval_fraction=0.0 (MM_EVAL_FRACTION) is not a fraction strictly between"),
        ("onnx_variant", "int9", "onnx_variant='int9' (MM_ONNX_VARIANT) is not one of auto, int8"),
        ("device", "gpu", "device='gpu' (MM_DEVICE) is not one of auto, cpu, cuda"),
    ],
)
def test_out_of_range_settings_are_refused_naming_field_and_variable(field, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        PipelineSettings(**{field: value})
    if field != "workers":  # MM_WORKERS has its own parser, checked above
        with pytest.raises(ValueError, match=re.escape(expected)):
            PipelineSettings.from_env({ENV_VARIABLES[field]: str(value)})


def test_a_run_configured_out_of_range_fails_as_it_starts(tmp_path, small_sample):
    """Run config (the launchpad's resources.settings.config) is checked when the resource is built: the run
    fails before its first asset, naming the field and its variable."""
    pipeline = make_pipeline(tmp_path, small_sample / "batches", small_sample / "images")
    batch = pipeline.register()[0]
    run_config = {"resources": {"settings": {"config": {"onnx_variant": "int9"}}}}
    result = pipeline.defs.resolve_job_def("ingest_job").execute_in_process(
        instance=pipeline.instance, partition_key=batch, run_config=run_config, raise_on_error=False
    )
    assert not result.success
    assert not pipeline.settings.layout.cleaned_text(batch).exists()
    assert [e for e in result.all_events if e.is_step_event] == []
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    assert (
        "onnx_variant='int9' (MM_ONNX_VARIANT) is not one of" in failure.event_specific_data.error.to_string()
    )
