"""Pipeline settings come from MM_* environment variables, each documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mm_pipeline.cli import _onnx_settings
from mm_pipeline.defs.resources import ENV_VARIABLES, PipelineSettings

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
