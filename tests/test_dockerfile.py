"""The Dockerfile checked without a Docker engine: its instructions, read structurally, and
its HEALTHCHECK one-liner run for real against the service on a loopback port."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_compose import forecast_cli, parse_command_line

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
CODE_DIRS = ("models", "training", "service")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (joined) logical line
    line: int  # 1-based line where it starts

    def exec_form(self) -> list[str]:
        """The JSON array form of CMD / ENTRYPOINT / HEALTHCHECK CMD arguments."""
        text = self.args.split("CMD", 1)[1] if self.keyword == "HEALTHCHECK" else self.args
        value = json.loads(text.strip())
        assert isinstance(value, list), f"line {self.line}: {self.keyword} not in exec form"
        return [str(item) for item in value]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: `\\` continuations joined, comment lines dropped (as BuildKit)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines, also inside a continuation
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def index_of(instructions: list[Instruction], predicate: str) -> int:
    """Position of the first RUN whose text contains `predicate`."""
    for i, ins in enumerate(instructions):
        if ins.keyword == "RUN" and predicate in ins.args:
            return i
    pytest.fail(f"no RUN contains {predicate!r}")


def locked_version(package: str) -> str:
    pins = re.findall(rf"^{package}==(\S+)$", (REPO / "requirements.lock").read_text(), re.M)
    assert len(pins) == 1, f"requirements.lock must pin {package} exactly once; found {pins}"
    return pins[0]


def test_single_stage_from_a_build_arg_base(instructions: list[Instruction]) -> None:
    assert instructions[0] == Instruction(
        "ARG", "BASE_IMAGE=python:3.11-slim", instructions[0].line
    )
    assert only(instructions, "FROM").args == "${BASE_IMAGE}"
    args = {
        ins.args.partition("=")[0]: ins.args.partition("=")[2]
        for ins in instructions
        if ins.keyword == "ARG"
    }
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert args["TORCH_SPEC"] == ""


def test_torch_is_installed_first_from_the_lock_pin(instructions: list[Instruction]) -> None:
    installs = [
        i
        for i, ins in enumerate(instructions)
        if ins.keyword == "RUN" and "pip install" in ins.args
    ]
    torch_step = instructions[installs[0]].args
    assert '--index-url "$TORCH_INDEX"' in torch_step and '"$spec"' in torch_step
    # The spec comes from the lock: run the very command the RUN uses, here, on our lock.
    [derive] = re.findall(r"\$\((grep [^)]*requirements\.lock)\)", torch_step)
    out = subprocess.run(["sh", "-c", derive], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"torch=={locked_version('torch')}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert f"torch=={locked_version('torch')}" in pyproject["project"]["dependencies"]
    copies_before = [ins.args for ins in instructions[: installs[0]] if ins.keyword == "COPY"]
    assert copies_before == ["pyproject.toml requirements.lock ./"]


def test_dependencies_are_installed_before_the_code_is_copied(
    instructions: list[Instruction],
) -> None:
    deps = index_of(instructions, "-r /tmp/runtime-requirements.txt")
    assert "-c requirements.lock" in instructions[deps].args
    code_copies = [
        i for i, ins in enumerate(instructions)
        if ins.keyword == "COPY" and ins.args.split()[0] in (*CODE_DIRS, "configs", "data")
    ]  # fmt: skip
    assert len(code_copies) == 5 and min(code_copies) > deps
    package = index_of(instructions, "pip install --no-deps -e .")
    assert package > max(code_copies)


def test_every_runtime_dependency_is_pinned_in_the_lock(instructions: list[Instruction]) -> None:
    """The RUN that lists pyproject's dependencies, executed here: each must be in the lock."""
    step = instructions[index_of(instructions, "tomllib")].args
    [code] = re.findall(r'python -c "(.*?)"\s*>', step)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    requirements = out.stdout.splitlines()  # one per line; markers hold spaces
    lock = (REPO / "requirements.lock").read_text().lower().replace("_", "-")
    for requirement in requirements:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert re.search(rf"^{re.escape(name)}==", lock, re.M), f"{name} is not pinned in the lock"
    assert len(requirements) == len(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    )


def test_copied_paths_exist_and_are_not_docker_ignored(instructions: list[Instruction]) -> None:
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    }  # fmt: skip
    assert {".env", ".venv", ".git", "mlruns"} <= ignored  # secrets and local state stay out
    for ins in instructions:
        if ins.keyword != "COPY":
            continue
        *sources, _ = ins.args.split()
        for source in sources:
            assert (REPO / source).exists(), (
                f"line {ins.line}: COPY {source}: not in the repository"
            )
            assert source not in ignored, f"line {ins.line}: COPY {source} is in .dockerignore"


def test_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    user = only(instructions, "USER")
    assert user.args not in ("root", "0") and not user.args.startswith(("root:", "0:"))
    assert re.search(rf"useradd .*\b{user.args}$", index_and_text(instructions, "useradd"), re.M)
    position = instructions.index(user)
    assert all(ins.keyword not in ("RUN", "COPY") for ins in instructions[position:])


def index_and_text(instructions: list[Instruction], needle: str) -> str:
    """The RUN text containing `needle`, split into lines at `&&` (one command per line)."""
    return instructions[index_of(instructions, needle)].args.replace(" && ", "\n")


def test_environment_entrypoint_and_default_command(instructions: list[Instruction]) -> None:
    env = " ".join(ins.args for ins in instructions if ins.keyword == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)
    assert only(instructions, "ENTRYPOINT").exec_form() == ["forecast"]
    cmd = only(instructions, "CMD").exec_form()
    assert cmd == ["serve", "--host", "0.0.0.0"]
    ctx = parse_command_line(forecast_cli(), ["forecast", *cmd])  # `serve` must exist
    assert ctx.params["port"] == 8000  # the port HEALTHCHECK probes and compose maps


def test_healthcheck_probes_v1_health_without_curl(instructions: list[Instruction]) -> None:
    check = only(instructions, "HEALTHCHECK")
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in check.args
    argv = check.exec_form()
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/v1/health" in argv[2]
    assert "curl" not in check.args and "wget" not in check.args  # not in python:3.11-slim


def test_compose_api_probes_with_the_same_command(instructions: list[Instruction]) -> None:
    import yaml

    api = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["api"]
    assert api["healthcheck"]["test"] == ["CMD", *only(instructions, "HEALTHCHECK").exec_form()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_healthcheck_command_against_a_live_service(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    """Start the app under uvicorn on a loopback port and run the HEALTHCHECK's own command."""
    try:
        import service.main  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"service.main is not importable yet ({exc}); the live check needs the app")
    port = free_port()
    [code] = [arg for arg in only(instructions, "HEALTHCHECK").exec_form() if "urlopen" in arg]
    code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    env = {
        **os.environ,
        "FORECAST_ENV": "development",
        # Liveness must not depend on the registry: point at a port where nothing listens.
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "FORECAST_STARTUP_WAIT_SECONDS": "0",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",  # as in docker-compose.yml: quick shutdown
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
        "FORECAST_DATABASE_URL": f"sqlite:///{tmp_path / 'series.db'}",
    }

    def probe() -> int:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30
        ).returncode

    assert probe() != 0  # nothing listens yet: the check must fail
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while probe() != 0:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "service not healthy after 90 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert probe() != 0  # and fails again once the service is gone
