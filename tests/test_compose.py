"""docker-compose.yml checked without a Docker engine.

The file is parsed with PyYAML and interpolated the way Compose does it (`$$`, `${VAR}`,
`${VAR:-default}`, `${VAR:?error}`, ...) from .env.example. No Compose JSON schema ships in any
installed package and tests run offline, so the structure the spec requires is checked here
directly. Every command line a container runs is parsed, without running it, against the real
CLIs: `forecast ...` against the typer app of `training.cli`, `mlflow ...` against
`mlflow.cli.cli`. The MLflow service's own script runs for real in the slow test at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SECRETS = ("POSTGRES_PASSWORD", "FORECAST_API_KEYS", "FORECAST_ADMIN_KEYS")
OWN_IMAGE_ENTRYPOINT = ["forecast"]  # the Dockerfile's ENTRYPOINT, for services without one
OWN_IMAGE_CMD = ["serve", "--host", "0.0.0.0"]  # the Dockerfile's CMD
SERVICES = ("postgres", "mlflow", "api", "scheduler", "trainer", "ray-head", "ray-worker")

# --- Compose interpolation ------------------------------------------------------------------

_VAR = r"[A-Za-z_][A-Za-z0-9_]*"
_INTERPOLATION = re.compile(
    rf"\$(?:(?P<escaped>\$)|\{{(?P<braced>{_VAR})(?:(?P<op>:?[-?+])(?P<arg>[^}}]*))?\}}"
    rf"|(?P<named>{_VAR}))"
)


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is unset or empty, or a malformed `$` expression."""


def variable_uses(text: str) -> Iterator[tuple[str, str | None, str | None]]:
    """Every (name, operator, argument) interpolated in `text`; `$$` escapes are skipped."""
    for match in _INTERPOLATION.finditer(text):
        if match["escaped"]:
            continue
        yield (match["braced"] or match["named"], match["op"], match["arg"])


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one string value (the forms the Compose spec defines)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value
        if op in (":?", "?") and (value is None or (op == ":?" and unset_or_empty)):
            raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        if op == ":-":
            return arg if unset_or_empty else str(value)
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return "" if unset_or_empty else arg
        if op == "+":
            return "" if value is None else arg
        return value or ""

    result = _INTERPOLATION.sub(replace, text)
    stray = [m.start() for m in re.finditer(r"\$", _INTERPOLATION.sub("", text))]
    if stray:
        raise InterpolationError(f"invalid interpolation format in {text!r}")
    return result


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not keys) of a parsed YAML tree."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def string_values(node: Any) -> Iterator[str]:
    """Every string value of a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from string_values(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from string_values(value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a Compose .env file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(_VAR, key), f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        env[key] = value
    return env


# --- command lines against the real CLIs ----------------------------------------------------


def forecast_cli() -> Any:
    """The command behind the `forecast` console script (every sub-command registered).

    Typer vendors its own copy of click, so the commands are duck-typed below, not isinstance'd.
    """
    import typer

    from training.cli import app

    return typer.main.get_command(app)


def mlflow_cli() -> Any:
    """The click group behind the `mlflow` console script."""
    from mlflow.cli import cli

    return cli


def is_group(command: Any) -> bool:
    """True for a click (or typer-vendored click) group."""
    return callable(getattr(command, "get_command", None)) and callable(
        getattr(command, "list_commands", None)
    )


def parse_command_line(root: Any, argv: list[str]) -> Any:
    """Resolve `argv` (program name first) to its sub-command and parse its arguments.

    Nothing runs: `make_context` only parses. A missing sub-command fails the test naming it;
    an unknown option or a bad value raises click's UsageError, which fails it too.
    """
    program, *args = argv
    if not is_group(root):
        return root.make_context(program, list(args))
    ctx = root.context_class(root, info_name=program)
    command, path = root, [program]
    while is_group(command):
        if not args:
            pytest.fail(f"`{' '.join(argv)}`: no sub-command given to `{' '.join(path)}`")
        name, *args = args
        sub = command.get_command(ctx, name)
        if sub is None:
            known = ", ".join(command.list_commands(ctx))
            pytest.fail(
                f"`{' '.join(argv)}`: `{' '.join(path)}` has no sub-command {name!r} "
                f"(known: {known}); a container runs a command that does not exist yet"
            )
        path.append(name)
        if is_group(sub):
            ctx = sub.context_class(sub, info_name=name, parent=ctx)
        else:
            ctx = sub.make_context(name, list(args), parent=ctx)
        command = sub
    return ctx


def shell_commands(script: str, environment: Mapping[str, str]) -> list[list[str]]:
    """Split an `sh -c` script of simple commands joined by `&&` into argv lists.

    `$VAR` / `${VAR}` are expanded from the container's environment, as sh would; a variable
    the environment lacks, or any shell construct beyond `&&`, fails the test.
    """
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token == "&&":
            commands.append([])
            continue
        if set(token) <= set("();<>|&"):
            pytest.fail(f"unsupported shell construct {token!r} in {script!r}")

        def expand(match: re.Match[str]) -> str:
            name = match[1] or match[2]
            if name not in environment:
                pytest.fail(f"script uses ${name}, which the service's environment lacks")
            return environment[name]

        commands[-1].append(re.sub(rf"\$(?:\{{({_VAR})\}}|({_VAR}))", expand, token))
    return [cmd[1:] if cmd[:1] == ["exec"] else cmd for cmd in commands]


def container_commands(service: Mapping[str, Any]) -> list[list[str]]:
    """The argv lists a service's container runs (entrypoint + command, image defaults)."""
    own_image = "build" in service
    entrypoint = service.get("entrypoint", OWN_IMAGE_ENTRYPOINT if own_image else None)
    command = service.get("command", OWN_IMAGE_CMD if own_image else [])
    if entrypoint is None:
        return []  # a third-party image's own entrypoint (postgres)
    assert isinstance(entrypoint, list) and isinstance(command, list), "use exec (list) form"
    argv = [*entrypoint, *command]
    if argv[:2] == ["sh", "-c"]:
        assert len(argv) == 3, f"sh -c takes one script; got {argv}"
        return shell_commands(argv[2], service.get("environment", {}))
    return [argv]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """docker-compose.yml as YAML, before interpolation."""
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    """The file as `docker compose config` would see it with .env.example + filled secrets."""
    env = {**example_env, **{name: f"test-{name.lower()}" for name in SECRETS}}
    resolved = interpolate_tree(raw, env)
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# --- structure -----------------------------------------------------------------------------

TOP_LEVEL = {"name", "services", "networks", "volumes", "configs", "secrets", "include", "models"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "configs", "secrets", "depends_on", "healthcheck", "profiles", "restart",
    "deploy", "user", "working_dir", "networks", "labels", "logging", "stop_grace_period",
    "stop_signal", "shm_size", "ulimits", "init", "pull_policy", "gpus", "read_only", "tmpfs",
}  # fmt: skip
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval"}
DURATION = re.compile(r"(\d+(\.\d+)?(us|ms|s|m|h))+")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def test_top_level_structure(raw: dict[str, Any]) -> None:
    keys = {key for key in raw if not key.startswith("x-")}
    assert keys <= TOP_LEVEL, f"unknown top-level keys {keys - TOP_LEVEL}"
    assert "version" not in raw  # obsolete in the Compose spec; Compose v2 warns
    assert set(raw["services"]) == set(SERVICES)


def test_services_follow_the_spec(services: dict[str, dict[str, Any]], raw: dict[str, Any]) -> None:
    volumes, configs = set(raw.get("volumes") or {}), set(raw.get("configs") or {})
    for name, service in services.items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"service {name}: keys outside the Compose spec: {unknown}"
        assert "image" in service or "build" in service, f"service {name}: no image or build"
        assert isinstance(service.get("environment", {}), dict), f"{name}: environment as a map"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in volumes, f"{name}: volume {source}"
        for config in service.get("configs", []):
            assert config["source"] in configs, f"service {name}: undeclared config {config}"
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"service {name} depends on unknown {dependency}"
            assert spec["condition"] in CONDITIONS, f"{name}: condition {spec['condition']}"
            if spec["condition"] == "service_healthy":
                assert "test" in services[dependency]["healthcheck"], f"{dependency} has none"
            # A service may wait on a profiled one only inside that profile.
            theirs = services[dependency].get("profiles")
            assert not theirs or set(theirs) <= set(service.get("profiles", [])), (
                f"{name} needs a profiled service"
            )


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check is not None, f"service {name} has no healthcheck"
        if name == "trainer":
            # One-shot job: compose reports its exit code; the image's API probe must be off.
            assert check == {"disable": True} and service["profiles"] == ["trainer"]
            assert service["restart"] == "no"
            continue
        assert set(check) <= HEALTHCHECK_KEYS, f"{name}: healthcheck keys {set(check)}"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test}"
        for key in ("interval", "timeout", "start_period"):
            assert DURATION.fullmatch(check[key]), f"{name}: healthcheck {key}={check[key]!r}"
        assert isinstance(check["retries"], int) and check["retries"] >= 1
        if test[0] == "CMD" and test[1:3] == ["python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")  # a syntax error fails here


def test_postgres_is_healthy_only_once_it_listens_on_tcp(
    services: dict[str, dict[str, Any]],
) -> None:
    test = services["postgres"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "pg_isready --host 127.0.0.1" in test[1]
    assert '"${POSTGRES_USER}"' in test[1]  # `$$` left for the container's shell


def test_api_scales_with_replicas(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert "container_name" not in api  # a fixed name allows one container only
    for port in api.get("ports", []):
        *host, container = str(port).split(":")
        assert container == "8000"
        if host:  # a fixed host port would collide on the second replica
            assert re.fullmatch(r"\d+-\d+", host[-1]), f"api publishes a fixed host port: {port}"
    assert api["depends_on"]["mlflow"] == {"condition": "service_healthy"}


# --- variables and secrets -------------------------------------------------------------------


def test_every_variable_is_listed_in_env_example(
    raw: dict[str, Any], example_env: dict[str, str]
) -> None:
    used = {name for text in string_values(raw) for name, _, _ in variable_uses(text)}
    assert used - set(example_env) == set(), "add these to .env.example"
    assert set(example_env) - used == set(), "listed in .env.example but never used"


def test_secrets_are_required_and_never_defaulted(raw: dict[str, Any]) -> None:
    uses = [use for text in string_values(raw) for use in variable_uses(text)]
    for secret in SECRETS:
        ops = {op for name, op, _ in uses if name == secret}
        assert ops == {":?"}, f"{secret} must appear only as ${{{secret}:?message}}; got {ops}"


def test_env_example_commits_no_secret(example_env: dict[str, str]) -> None:
    for secret in SECRETS:
        assert example_env[secret] == "", f".env.example must leave {secret} empty"


def test_a_missing_secret_stops_compose_with_its_message(
    raw: dict[str, Any], example_env: dict[str, str]
) -> None:
    env = {**example_env, "POSTGRES_PASSWORD": "x", "FORECAST_ADMIN_KEYS": "y"}
    with pytest.raises(InterpolationError, match=r"required variable FORECAST_API_KEYS .*\.env"):
        interpolate_tree(raw, env)


# --- command lines ------------------------------------------------------------------------


def test_mlflow_service_runs_db_upgrade_then_the_server(
    services: dict[str, dict[str, Any]], raw: dict[str, Any]
) -> None:
    from mlflow.server.security_utils import is_allowed_host_header
    from sqlalchemy.engine import make_url

    mlflow = services["mlflow"]
    commands = container_commands(mlflow)
    assert len(commands) == 2, f"expected db upgrade, then server; got {commands}"
    assert commands[0][:3] == ["mlflow", "db", "upgrade"] and commands[1][:2] == [
        "mlflow",
        "server",
    ]
    upgrade, server = (parse_command_line(mlflow_cli(), argv) for argv in commands)
    url = make_url(upgrade.params["url"])
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg", "postgres", 5432, services["postgres"]["environment"]["POSTGRES_DB"]
    )  # fmt: skip
    assert url.password == "test-postgres_password"
    params = server.params
    assert params["backend_store_uri"] == upgrade.params["url"]
    assert params["serve_artifacts"] is True
    assert f"mlartifacts:{params['artifacts_destination']}" in mlflow["volumes"]
    assert (params["host"], params["port"]) == ("0.0.0.0", 5000)
    allowed = [host.strip() for host in params["allowed_hosts"].split(",")]
    assert is_allowed_host_header(allowed, "mlflow:5000")  # what the other containers send
    assert "127.0.0.1:5000/health" in mlflow["healthcheck"]["test"][3]
    assert raw["volumes"] == {"pgdata": None, "mlartifacts": None}


def test_api_command_parses_and_its_settings_load(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = services["api"]
    [argv] = container_commands(api)
    ctx = parse_command_line(forecast_cli(), argv)
    assert argv[:2] == ["forecast", "serve"]
    assert (ctx.params["host"], ctx.params["port"]) == ("0.0.0.0", 8000)
    assert "127.0.0.1:8000/v1/health" in api["healthcheck"]["test"][3]
    env = api["environment"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["FORECAST_ENV"] == "production"
    # A poll against a dead registry must fail within compose's 10 s stop grace period.
    assert (env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"], env["MLFLOW_HTTP_REQUEST_TIMEOUT"]) == (
        "2",
        "10",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    from service.settings import load_settings

    settings = load_settings()  # production settings accept this environment
    assert settings.auth_enabled and settings.tracking_uri == "http://mlflow:5000"


def assert_config_in_repo(ctx: Any, argv: list[str]) -> None:
    config = Path(str(ctx.params["config"]))
    assert (REPO / config).is_file(), f"`{' '.join(argv)}`: {config} is not in the repository"


def test_scheduler_command_parses(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the image's WORKDIR holds configs/ as the repository does
    [argv] = container_commands(services["scheduler"])
    assert argv[:2] == ["forecast", "schedule"]
    assert_config_in_repo(parse_command_line(forecast_cli(), argv), argv)


def test_trainer_commands_parse(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    commands = container_commands(services["trainer"])
    assert commands and all(argv[1] in ("train", "load-series") for argv in commands)
    for argv in commands:
        parsed = parse_command_line(forecast_cli(), argv)
        if argv[1] == "train":
            assert_config_in_repo(parsed, argv)


def test_trainer_registers_every_model_the_scheduler_retrains(
    services: dict[str, dict[str, Any]],
) -> None:
    schedule = tomllib.loads((REPO / "configs" / "schedule.toml").read_text())
    scheduled = {job.get("model", job["name"]) for job in schedule["jobs"]}
    trained, seeded = set(), []
    for argv in container_commands(services["trainer"]):
        if argv[1] == "load-series":
            seeded.append(argv[argv.index("--series-id") + 1])
            continue
        config = tomllib.loads((REPO / argv[argv.index("--config") + 1]).read_text())
        trained.add(config["name"])
        # A store-backed spec trains on a series an earlier trainer step seeded.
        assert set(config["data"].get("series", [])) <= set(seeded), (argv, seeded)
    assert scheduled <= trained, f"no trainer job registers {sorted(scheduled - trained)}"


def test_ray_nodes_parse_against_the_real_ray_cli_and_join_one_cluster(
    services: dict[str, dict[str, Any]],
) -> None:
    head, worker = services["ray-head"], services["ray-worker"]
    assert head["profiles"] == worker["profiles"] == ["ray"]
    [head_argv] = container_commands(head)
    [worker_argv] = container_commands(worker)
    head_args, worker_args = ray_start_params(head_argv), ray_start_params(worker_argv)
    assert head_args["head"] and head_args["block"] and worker_args["block"]
    assert worker_args["address"] == f"ray-head:{head_args['port']}"
    # RAY_ADDRESS (empty by default: in-container) reaches the services that shard work.
    for name in ("scheduler", "trainer"):
        assert services[name]["environment"]["RAY_ADDRESS"] == ""
    assert head_args["ray_client_server_port"] == 10001  # ray://ray-head:10001 in .env.example


def ray_start_params(argv: list[str]) -> dict[str, Any]:
    """The options `ray start` parses from `argv`, by the real ray CLI in a child process
    (importing ray here would fix its auth settings before the Ray cluster tests set them)."""
    code = (
        "import json, sys\n"
        "from ray.scripts.scripts import cli\n"
        "argv = json.loads(sys.argv[1])\n"
        "assert argv[:2] == ['ray', 'start'], argv\n"
        "ctx = cli.get_command(None, 'start').make_context('ray start', argv[2:])\n"
        "print(json.dumps(ctx.params, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    params: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return params


def test_parsing_rejects_unknown_options_and_commands() -> None:
    """The checks above can fail: a bad option or sub-command is caught without running it."""
    for cli, argv in (
        (mlflow_cli(), ["mlflow", "server", "--no-such-flag"]),
        (forecast_cli(), ["forecast", "datasets", "--no-such-flag"]),
    ):
        with pytest.raises(Exception, match=r"No such option:? '?--no-such-flag") as caught:
            parse_command_line(cli, argv)
        assert caught.typename == "NoSuchOption"
    with pytest.raises(pytest.fail.Exception, match="`mlflow db` has no sub-command 'downgrade'"):
        parse_command_line(mlflow_cli(), ["mlflow", "db", "downgrade", "sqlite://"])


def test_database_urls_point_at_the_compose_databases(
    services: dict[str, dict[str, Any]], raw: dict[str, Any]
) -> None:
    from sqlalchemy.engine import make_url

    created = re.findall(r"CREATE DATABASE (\w+);", raw["configs"]["create-forecast-db"]["content"])
    assert created == ["forecast"]
    for name in ("api", "scheduler", "trainer"):
        url = make_url(services[name]["environment"]["FORECAST_DATABASE_URL"])
        assert (url.drivername, url.host, url.database) == (
            "postgresql+psycopg",
            "postgres",
            "forecast",
        )
        assert url.username == services["postgres"]["environment"]["POSTGRES_USER"]


def test_scheduler_healthcheck_connects_to_its_database(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    code = services["scheduler"]["healthcheck"]["test"][3]

    def run(url: str) -> int:
        env = {**os.environ, "FORECAST_DATABASE_URL": url}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=60
        ).returncode

    assert run(f"sqlite:///{tmp_path / 'store.db'}") == 0
    assert run(f"sqlite:///{tmp_path / 'missing-dir' / 'store.db'}") != 0


# --- the MLflow service's script, for real ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in {text!r}"
    return text.replace(old, new)


@pytest.mark.slow
def test_mlflow_script_serves_health_and_artifacts(
    services: dict[str, dict[str, Any]], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Runs the service's `sh -c` script (db upgrade, then server) on a loopback port.

    The backend is a fresh database on $FORECAST_TEST_POSTGRES_URL's server when set (the
    production engine), else SQLite;
    the artifact volume becomes a temp folder. Then the healthcheck one-liner, a request with
    the Host header the other containers send, and an artifact upload through the server.
    """
    mlflow = services["mlflow"]
    port = free_port()
    artifacts = tmp_path / "mlartifacts"
    script = mlflow["command"][0]
    script = replace_once(
        script, "--artifacts-destination /mlartifacts", f"--artifacts-destination {artifacts}"
    )
    script = replace_once(script, "--host 0.0.0.0", "--host 127.0.0.1")
    script = replace_once(script, "--port 5000", f"--port {port}")
    script = re.sub(r"--workers \d+", "--workers 1", script)
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if os.environ.get("FORECAST_TEST_POSTGRES_URL"):
        backend = request.getfixturevalue("fresh_postgres_database")
    env = {
        **os.environ,
        **mlflow["environment"],
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_BACKEND_STORE_URI": backend,
    }
    health = replace_once(mlflow["healthcheck"]["test"][3], "127.0.0.1:5000", f"127.0.0.1:{port}")
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            ["sh", "-c", script], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while subprocess.run([sys.executable, "-c", health], capture_output=True).returncode != 0:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server not healthy after 240 s"
            time.sleep(1)
        probe = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
            headers={"Host": "mlflow:5000"},
        )
        with urllib.request.urlopen(probe, timeout=10) as response:
            assert response.status == 200
        evil = urllib.request.Request(probe.full_url, headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(evil, timeout=10)

        import mlflow as mlflow_client

        (tmp_path / "note.txt").write_text("artifact")
        client = mlflow_client.MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        run = client.create_run(client.create_experiment("compose-check"))
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        [stored] = artifacts.rglob("note.txt")  # on the "volume", uploaded through the server
        assert stored.read_text() == "artifact"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
