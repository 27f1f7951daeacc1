"""One table of environment variables (mm_pipeline/environment.py), and every deployment passes each on.

Runs load the code location again in their own container or pod and read their settings there, so a variable
that reaches the code server but not the run is a setting the UI shows and the run ignores.
"""

from __future__ import annotations

import re

import pytest
import yaml

from mm_pipeline.defs.resources import ENV_VARIABLES, PipelineSettings
from mm_pipeline.environment import DEFAULT_WORKERS, ENVIRONMENT, SETTINGS_VARIABLES
from mm_pipeline_tests.conftest import REPO
from mm_pipeline_tests.ops.test_deployment_files import DEPLOY, K8S, dockerfile_instructions

NAMES = {v.name for v in ENVIRONMENT}
PIPELINE_VARIABLE = re.compile(r"^(MM|WANDB)_")


@pytest.fixture(scope="module")
def compose_env() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["x-dagster-env"]


def compose_default(value: str) -> str:
    """The value compose gives ``${VAR:-default}`` when the shell leaves VAR unset."""
    match = re.fullmatch(r"\$\{(\w+):-(.*)\}", value)
    return match.group(2) if match else value


def test_the_table_is_the_settings_source():
    assert ENV_VARIABLES is SETTINGS_VARIABLES
    fields = set(PipelineSettings.model_fields)
    assert set(SETTINGS_VARIABLES) <= fields
    # every setting a deployment can change has its variable (compact_vocab_size is fixed by the recipe)
    assert fields - set(SETTINGS_VARIABLES) == {"compact_vocab_size"}
    assert len(NAMES) == len(ENVIRONMENT)


def test_workers_has_one_default_the_cpu_count():
    assert PipelineSettings().workers == PipelineSettings.from_env({}).workers == DEFAULT_WORKERS


def test_an_empty_variable_keeps_the_default():
    # compose passes `${MM_WORKERS:-}` as an empty string when the operator left it unset
    settings = PipelineSettings.from_env({v: "" for v in SETTINGS_VARIABLES.values()})
    assert settings == PipelineSettings()


def test_compose_sets_every_variable_for_every_service(compose_env):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert set(compose_env) >= NAMES, f"compose never sets {sorted(NAMES - set(compose_env))}"
    unknown = {k for k in compose_env if PIPELINE_VARIABLE.match(k)} - NAMES
    assert not unknown, f"compose sets {sorted(unknown)}, which mm_pipeline/environment.py does not list"
    for name in ("user_code", "webserver", "daemon"):
        service_env = compose["services"][name]["environment"]
        # a value, maybe empty: the run launcher refuses to forward a variable absent from its process
        assert all(isinstance(service_env[v], str) for v in NAMES), name
    for variable in ENVIRONMENT:
        value = compose_env[variable.name]
        if variable.deployment_sets:
            assert value.startswith("/opt/mm_pipeline/data"), f"{variable.name} must be on the data volume"
        elif variable.field is not None:
            assert value == f"${{{variable.name}:-}}", f"{variable.name}: from the shell, else the default"


def test_docker_run_launcher_forwards_every_variable(compose_env):
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    forwarded = {v.split("=")[0] for v in instance["run_launcher"]["config"]["env_vars"]}
    assert forwarded >= NAMES, f"run containers never get {sorted(NAMES - forwarded)}"
    assert {v for v in forwarded if PIPELINE_VARIABLE.match(v)} <= NAMES
    # bare names are read from the launching daemon's environment, which compose sets
    assert forwarded <= set(compose_env)


def test_dockerfile_sets_only_table_variables_with_the_compose_values(compose_env):
    env = " ".join(args for instruction, args in dockerfile_instructions() if instruction == "ENV")
    image = dict(re.findall(r"(\w+)=(\S+)", env))
    ours = {k: v for k, v in image.items() if PIPELINE_VARIABLE.match(k)}
    assert set(ours) <= NAMES
    assert "MM_DATA_DIR" in ours  # the image alone writes to the data volume's mount point
    assert {k: compose_default(compose_env[k]) for k in ours} == ours


def test_helm_deployment_passes_its_whole_environment_to_runs():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run and step pods get env + secrets
    env = {e["name"] for e in deployment["env"]}
    assert {k for k in env if PIPELINE_VARIABLE.match(k)} <= NAMES
    assert {v.name for v in ENVIRONMENT if v.deployment_sets} <= env
    secrets = {v.name for v in ENVIRONMENT if v.secret}
    assert not secrets & env, "secrets come from envSecrets, not literal values"
    assert secrets and deployment["envSecrets"]


def test_every_variable_of_the_table_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    assert [v.name for v in ENVIRONMENT if f"`{v.name}`" not in readme] == []
