"""Deployment files agree with each other and with the code: compose, Dockerfile, workspaces, k8s example.

Also loads the code location the three ways a deployment does: ``dagster definitions validate``,
``dg check defs`` and a real ``dagster api grpc`` server answering health checks and serving definitions.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess

import pytest
import yaml

from mm_pipeline_tests.conftest import REPO
from mm_pipeline_tests.ops.conftest import (
    LOOPBACK,
    VENV_BIN,
    free_port,
    log_tail,
    spawn,
    stop_process,
    wait_for,
)

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
CLI_TIMEOUT = 240  # one code-location load is ~10 s of CPU; this machine's two cores are shared


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_compose_services_and_healthcheck(compose):
    services = compose["services"]
    assert {"postgres", "user_code", "webserver", "daemon"} <= set(services)

    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["user_code"]["condition"] == "service_started"

    command = services["user_code"]["command"]
    assert command[:3] == ["dagster", "api", "grpc"]
    assert option(command, "-m") == "mm_pipeline.definitions"
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    # DockerRunLauncher starts run containers from the image the code server reports.
    assert services["user_code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == services["user_code"]["image"]
    assert services["webserver"]["image"] == services["daemon"]["image"] == services["user_code"]["image"]

    # Every service reaches Postgres with the credentials the postgres service was created with.
    env = compose["x-dagster-env"]
    pg_env = postgres["environment"]
    assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert (env["DAGSTER_POSTGRES_USER"], env["DAGSTER_POSTGRES_PASSWORD"], env["DAGSTER_POSTGRES_DB"]) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    assert env["DAGSTER_POSTGRES_PORT"] == "5432"
    for name in ("user_code", "webserver", "daemon"):
        service_env = services[name]["environment"]
        assert {k: service_env[k] for k in env} == env, f"{name} lacks the shared environment"


def test_every_referenced_file_exists(compose):
    services = compose["services"]
    assert services["user_code"]["build"] == "."
    assert DOCKERFILE.exists()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"compose mounts missing {source}"
    copied = []
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY":
            *sources, _target = shlex.split(args)
            copied += sources
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert "deploy/dagster.yaml" in copied


def test_dockerfile_installs_like_the_makefile():
    instructions = dockerfile_instructions()
    runs = [args for instruction, args in instructions if instruction == "RUN"]
    assert any(re.search(r"\bmake install\b", run) for run in runs), (
        "the image must install with `make install`"
    )
    assert not any("pip install" in run for run in runs), "installing outside the Makefile skips its quirks"
    makefile = (REPO / "Makefile").read_text()
    assert "--no-build-isolation youtokentome==1.0.6" in makefile and "cython<3" in makefile
    assert instructions[0][0] == "FROM" and "python:3.11" in instructions[0][1]
    copies = {
        shlex.split(a)[0]: shlex.split(a)[-1]
        for i, a in instructions
        if i == "COPY" and len(shlex.split(a)) == 2
    }
    env = " ".join(a for i, a in instructions if i == "ENV")
    home = re.search(r"DAGSTER_HOME=(\S+)", env).group(1)
    assert copies["deploy/dagster.yaml"] == f"{home}/dagster.yaml", (
        "the instance config must land in DAGSTER_HOME"
    )
    assert any(i == "COPY" and a.split()[0] == "mm_pipeline" for i, a in instructions)


def test_ports_and_hosts_agree(compose):
    services = compose["services"]
    user_code = services["user_code"]["command"]
    [location] = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    grpc = location["grpc_server"]
    assert grpc["host"] == "user_code" and grpc["host"] in services
    assert str(grpc["port"]) == option(user_code, "-p")
    assert option(user_code, "-h") == "0.0.0.0"  # reachable from the other containers

    webserver = services["webserver"]["command"]
    published = {p.split(":")[1] for p in services["webserver"]["ports"]}
    assert option(webserver, "-p") in published
    exposed = {a for i, args in dockerfile_instructions() if i == "EXPOSE" for a in args.split()}
    assert {option(user_code, "-p"), option(webserver, "-p")} <= exposed
    # The workspace file the webserver and daemon read is the one compose mounts.
    for name in ("webserver", "daemon"):
        workspace = option(services[name]["command"], "-w")
        assert f"./deploy/workspace.yaml:{workspace}:ro" in services[name]["volumes"]


def test_instance_yaml_matches_compose(compose):
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    env = compose["x-dagster-env"]
    db = instance["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert db[key]["env"] in env, f"storage.{key} reads a variable compose does not set"
    launcher = instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert launcher["config"]["network"] in {n["name"] for n in compose["networks"].values()}
    volume = launcher["config"]["container_kwargs"]["volumes"][0].split(":")[0]
    assert volume in {v["name"] for v in compose["volumes"].values()}
    for key in launcher["config"]["env_vars"]:
        assert key in env, f"run containers get {key}, compose never sets it"
    assert instance["scheduler"]["class"] == "DagsterDaemonScheduler"
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_local_workspace_points_at_the_module():
    [location] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = location["python_module"]
    assert (REPO / module["working_directory"]).resolve() == REPO
    assert importlib.util.find_spec(module["module_name"]) is not None


def test_k8s_example_parses_and_uses_k8s_launcher_and_executor():
    from mm_pipeline.definitions import build_defs

    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    [deployment] = values["dagster-user-deployments"]["deployments"]
    module = option(deployment["dagsterApiGrpcArgs"], "-m")
    assert (K8S / f"{module}.py").exists()
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["MM_DATA_DIR"] in mounts
    pvc = yaml.safe_load((K8S / "data-pvc.yaml").read_text())
    assert deployment["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]

    source = (K8S / f"{module}.py").read_text()
    assert "from dagster_k8s import k8s_job_executor" in source
    dockerfile = (K8S / "Dockerfile").read_text()
    assert (
        "dagster-k8s==0.29.27" in dockerfile
        and f"{module}.py" in dockerfile
        and "executor.yaml" in dockerfile
    )

    executor = yaml.safe_load((K8S / "executor.yaml").read_text())
    assert executor["executor"] == "k8s_job_executor"
    config = executor["config"]
    defs = build_defs()
    model_steps = {n.name for n in defs.resolve_job_def("model_job").graph.node_defs}
    gpu_steps = config["per_step_k8s_config"]
    assert set(gpu_steps) == {"base_model", "fine_tuned_model", "onnx_model"} <= model_steps
    for step in gpu_steps.values():
        resources = step["container_config"]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] >= 1
        assert step["pod_spec_config"]["node_selector"] == {"mm-pipeline/pool": "gpu"}
        assert any(t["key"] == "nvidia.com/gpu" for t in step["pod_spec_config"]["tolerations"])
    assert config["step_k8s_config"]["pod_spec_config"]["node_selector"] == {"mm-pipeline/pool": "cpu"}


# --- the code location, loaded by the CLIs and served over gRPC ---------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    data = tmp_path_factory.mktemp("cli_data")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MM_DATA_DIR": str(data),
        "MM_INCOMING_DIR": str(data / "incoming"),
        "MM_IMAGES_DIR": str(data / "images"),
        "WANDB_MODE": "disabled",
    }


@pytest.fixture(scope="module", autouse=True)
def code_location_processes(cli_env, tmp_path_factory):
    """The three loads, started together with this module's first test (each imports torch and the whole
    project: they overlap with each other and with the file checks)."""
    logs = tmp_path_factory.mktemp("cli_logs")
    port = free_port()
    commands = {
        "validate": [str(VENV_BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        "grpc": [str(VENV_BIN / "dagster"), "api", "grpc", "-m", "mm_pipeline.definitions", "-h", LOOPBACK]
        + ["-p", str(port)],
    }
    if (VENV_BIN / "dg").exists():
        commands["dg"] = [str(VENV_BIN / "dg"), "check", "defs"]
    procs = {}
    try:
        for name, argv in commands.items():
            # One DAGSTER_HOME each: concurrent first use of one SQLite instance races on its schema.
            home = tmp_path_factory.mktemp(f"home_{name}")
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            procs[name] = spawn(argv, logs / f"{name}.log", env={**cli_env, "DAGSTER_HOME": str(home)})
        yield procs, logs, port
    finally:
        for proc in procs.values():
            stop_process(proc)


def finished(procs, logs, name: str) -> str:
    proc = procs[name]
    try:
        proc.wait(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} did not finish in {CLI_TIMEOUT} s:\n{log_tail(logs / f'{name}.log')}")
    output = log_tail(logs / f"{name}.log", 20000)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{output}"
    return output


def test_dagster_definitions_validate(code_location_processes):
    procs, logs, _ = code_location_processes
    output = finished(procs, logs, "validate")
    assert "Validation successful for code location mm_pipeline.definitions" in output


def test_dg_check_defs(code_location_processes):
    procs, logs, _ = code_location_processes
    if "dg" not in procs:
        pytest.skip("dg (dagster-dg-cli, a dev dependency) is not installed")
    assert "All definitions loaded successfully" in finished(procs, logs, "dg")


def test_grpc_code_server_is_healthy_and_serves_definitions(code_location_processes, cli_env):
    procs, logs, port = code_location_processes
    server = procs["grpc"]

    def healthy() -> bool:
        check = subprocess.run(
            [str(VENV_BIN / "dagster"), "api", "grpc-health-check", "-h", LOOPBACK, "-p", str(port)],
            capture_output=True,
            timeout=60,
            env=cli_env,
        )
        return check.returncode == 0

    try:
        wait_for(healthy, CLI_TIMEOUT, f"gRPC server on {LOOPBACK}:{port}", proc=server, interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log_tail(logs / 'grpc.log')}") from None
    # A client that imports no project code loads the whole location from the server.
    served = subprocess.run(
        [
            str(VENV_BIN / "dagster"),
            "definitions",
            "validate",
            "--grpc-host",
            LOOPBACK,
            "--grpc-port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env,
    )
    assert served.returncode == 0, served.stdout + served.stderr
    assert f"Validation successful for code location grpc:{LOOPBACK}:{port}" in served.stdout + served.stderr
    stop_process(server)
    assert server.returncode is not None
    assert not healthy()
