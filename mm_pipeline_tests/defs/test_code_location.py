"""The code location is built by a function: Dagster loads it the way workspace.yaml names it, and the settings
are read from the environment when it loads, never when the module is imported; the CLI passes its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.code_pointer import CodePointer
from dagster._core.definitions.reconstruct import initialize_repository_def_from_pointer
from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

from mm_pipeline_tests.conftest import REPO


def load_workspace_location() -> dg.RepositoryDefinition:
    """The one code location of workspace.yaml, loaded as ``dagster dev -w workspace.yaml`` and
    ``dagster api grpc -m`` do: find the module's loadable target, then initialize it from a code pointer."""
    [location] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = location["python_module"]["module_name"]
    working_directory = str(REPO / location["python_module"]["working_directory"])
    [target] = loadable_targets_from_python_module(module, working_directory)
    assert target.attribute == "defs"
    return initialize_repository_def_from_pointer(CodePointer.from_module(module, "defs", working_directory))


def loaded_settings(repo: dg.RepositoryDefinition):
    """The ``settings`` resource as a run of that location initializes it."""
    with dg.build_resources({"settings": repo.get_top_level_resources()["settings"]}) as resources:
        return resources.settings


def test_workspace_module_reads_the_environment_when_loaded_not_when_imported(monkeypatch, tmp_path):
    import mm_pipeline.definitions  # imported once, before the environment below exists

    assert not isinstance(mm_pipeline.definitions.defs, dg.Definitions)  # a function Dagster calls to load
    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path / "loaded"))
    monkeypatch.setenv("MM_IMAGE_SIZE", "128")
    monkeypatch.setenv("MM_WORKERS", "3")
    repo = load_workspace_location()
    settings = loaded_settings(repo)
    assert (settings.data_dir, settings.image_size, settings.workers) == (str(tmp_path / "loaded"), 128, 3)
    assert {"ingest_job", "model_job", "embeddings_job", "evaluation_job"} <= {
        j.name for j in repo.get_all_jobs()
    }

    monkeypatch.setenv("MM_IMAGE_SIZE", "224")  # a reload (UI "Reload", a new run process) reads it again
    assert loaded_settings(load_workspace_location()).image_size == 224


def test_importing_the_definitions_module_builds_nothing():
    """Importing the module reads no setting: a malformed variable fails only when Dagster loads it."""
    code = (
        "import mm_pipeline.definitions as d\n"
        "try:\n"
        "    d.defs()\n"
        "except ValueError as e:\n"
        "    print('load failed:', e)\n"
    )
    env = {**os.environ, "MM_IMAGE_SIZE": "large", "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "load failed: MM_IMAGE_SIZE='large' is not a valid int" in done.stdout


def test_the_cli_passes_settings_and_leaves_the_environment_alone(monkeypatch, tmp_path):
    """``mm-pipeline demo`` builds its settings from the sample folder (unless MM_* says otherwise) and hands
    them to ``build_defs``; it no longer writes MM_* variables into os.environ."""
    from mm_pipeline import cli

    seen = {}

    def fake_report(settings, instance, started, where):
        seen["settings"] = settings
        return 0

    out = tmp_path / "sample"
    (out / "batches").mkdir(parents=True)
    (out / "batches" / "batch_000.parquet").write_bytes(b"")
    monkeypatch.setattr(cli, "_materialize_and_report", fake_report)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for variable in ("MM_INCOMING_DIR", "MM_IMAGES_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MM_IMAGES_DIR", str(tmp_path / "photos"))
    before = dict(os.environ)

    assert cli.main(["demo", "--out", str(out)]) == 0
    assert seen["settings"].incoming_dir == str(out / "batches")
    assert seen["settings"].images_dir == str(tmp_path / "photos")  # the environment wins over the sample
    assert dict(os.environ) == before


def test_demo_records_its_runs_with_or_without_dagster_home(monkeypatch, tmp_path):
    """``mm-pipeline demo`` uses ``--dagster-home``, else DAGSTER_HOME (created when absent), else a temporary
    instance as ``run`` does; without DAGSTER_HOME it used to fail with Dagster's traceback after making the
    sample."""
    from mm_pipeline import cli

    seen = []

    def fake_report(settings, instance, started, where):
        seen.append((Path(instance.root_directory), where))
        return 0

    out = tmp_path / "sample"
    (out / "batches").mkdir(parents=True)
    (out / "batches" / "batch_000.parquet").write_bytes(b"")
    monkeypatch.setattr(cli, "_materialize_and_report", fake_report)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["demo", "--out", str(out)]) == 0
    temporary, where = seen[-1]
    assert "temporary Dagster instance, now removed" in where and not temporary.exists()

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "not_yet"))
    assert cli.main(["demo", "--out", str(out)]) == 0
    assert seen[-1] == (
        tmp_path / "not_yet",
        f"runs recorded in DAGSTER_HOME={tmp_path / 'not_yet'} (`make ui` shows them)",
    )
    assert (tmp_path / "not_yet").is_dir()

    assert cli.main(["demo", "--out", str(out), "--dagster-home", str(tmp_path / "chosen")]) == 0
    assert seen[-1][0] == tmp_path / "chosen" and str(tmp_path / "chosen") in seen[-1][1]


def test_the_kubernetes_location_is_a_function_over_build_defs(monkeypatch, tmp_path):
    """deploy/k8s/mm_pipeline_k8s.py (loaded by ``dagster api grpc -m mm_pipeline_k8s`` in its image) builds
    the same graph with the k8s_job_executor, settings read when it loads; dagster-k8s is stubbed here."""
    import importlib.util
    import types

    @dg.executor(name="k8s_job_executor", config_schema=dg.Permissive())
    def k8s_job_executor(init_context):
        raise AssertionError("never started in this test")

    monkeypatch.setitem(sys.modules, "dagster_k8s", types.SimpleNamespace(k8s_job_executor=k8s_job_executor))
    spec = importlib.util.spec_from_file_location("mm_pipeline_k8s", REPO / "deploy/k8s/mm_pipeline_k8s.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not isinstance(module.defs, dg.Definitions)

    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path / "pod"))
    defs = module.defs()
    assert defs.resolve_job_def("model_job").executor_def.name == "k8s_job_executor"
    with dg.build_resources({"settings": defs.resources["settings"]}) as resources:
        assert resources.settings.data_dir == str(tmp_path / "pod")


def test_loading_the_workspace_names_the_location_as_the_project_does(tmp_path):
    """``dagster definitions validate -w workspace.yaml`` (what ``dagster dev`` loads): the dg project's
    ``code_location_name`` is the name the workspace registers, so no load warns that they differ (unset, dg
    took the checkout folder's name and warned 65 times in one validation)."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "MM_DATA_DIR": str(tmp_path / "data")}
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "definitions",
        "validate",
        "-w",
        "workspace.yaml",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    [location] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    assert f"Validation successful for code location {location['python_module']['module_name']}" in output
    assert "does not match the name" not in output
