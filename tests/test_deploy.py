"""The deployment files: Dockerfile, compose.yaml and the systemd units.

Docker cannot build or run here (no daemon, no registry), so these tests check what can be
checked without it: every gateway command in the files is one the CLI accepts, every setting
they set is one the gateway reads, the image runs as a non-root user and keeps secrets out of
its build context, and the systemd units pass `systemd-analyze verify` (when available).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from whatsapp_api_integration.cli import build_parser
from whatsapp_api_integration.settings import SETTING_NAMES

ROOT = Path(__file__).parents[1]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def gateway_command_is_valid(argv: list[str]) -> None:
    """`argv` starts with whatsapp-gateway and parses with the real CLI parser."""
    assert argv[0] == "whatsapp-gateway", argv
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exited:  # argparse exits on an unknown command or option
        pytest.fail(f"the CLI refuses {shlex.join(argv)} (exit {exited.code})")
    assert getattr(args, "func", None) is not None, argv


def test_the_validity_check_refuses_a_wrong_command() -> None:
    with pytest.raises(pytest.fail.Exception):
        gateway_command_is_valid(["whatsapp-gateway", "serve", "--no-such-option"])


# ---- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    found = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        found.append((instruction.upper(), arguments.strip()))
    return found


def test_dockerfile_base_user_and_command() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for name, arguments in instructions if name == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1] not in ("root", "0"), "the image must not run as root"
    last_user = max(i for i, (name, _) in enumerate(instructions) if name == "USER")
    assert all(name != "RUN" for name, _ in instructions[last_user:]), (
        "install as root, then switch user: no RUN after the last USER"
    )
    cmd = [json.loads(arguments) for name, arguments in instructions if name == "CMD"][-1]
    gateway_command_is_valid(cmd)
    assert cmd[1] == "serve"
    assert "0.0.0.0" in cmd, "serve must listen outside the container"
    assert ("EXPOSE", "5006") in instructions


def test_dockerfile_copies_what_exists_and_installs_the_server() -> None:
    instructions = dockerfile_instructions()
    for name, arguments in instructions:
        if name == "COPY":
            *sources, _destination = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    runs = " ".join(arguments for name, arguments in instructions if name == "RUN")
    assert "pip install '.[server,postgres]'" in runs
    env = " ".join(arguments for name, arguments in instructions if name == "ENV")
    for assignment in shlex.split(env):
        name = assignment.split("=", 1)[0]
        if not name.startswith(("PYTHON", "PIP_")):
            assert name in SETTING_NAMES, f"ENV {name} is not a setting the gateway reads"


def test_dockerignore_keeps_secrets_and_stores_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in (".env", "variables.env", "*.db", ".git/"):
        assert pattern in ignored, pattern
    assert any(line.startswith(".venv") for line in ignored)


# ---- compose.yaml --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_compose_has_web_worker_postgres_and_rasa(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"gateway", "worker", "postgres", "rasa"} <= set(services)
    gateway, worker = services["gateway"], services["worker"]
    assert gateway["image"] == worker["image"], "web and worker must run the same code"
    assert "5006:5006" in gateway["ports"]
    assert "--no-worker" in gateway["command"]
    assert worker["command"] == ["whatsapp-gateway", "worker"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["rasa"]["build"]["dockerfile"] == "deploy/rasa/Dockerfile"


def test_compose_commands_and_settings_are_the_gateways(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "whatsapp-gateway":
            gateway_command_is_valid(command)
            checked += 1
            environment = service.get("environment", {})
            assert isinstance(environment, dict), name
            for setting in environment:
                assert setting in SETTING_NAMES, f"{name}: {setting} is not a gateway setting"
            url = str(environment.get("DATABASE_URL", ""))
            assert url.startswith("postgresql://"), name
            assert "@postgres:5432/" in url, name
    assert checked >= 3  # migrate, gateway, worker


def test_compose_starts_the_gateway_after_its_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["whatsapp-gateway", "db", "upgrade"]
    for name in ("gateway", "worker"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_takes_no_secret_literally(compose: dict[str, Any]) -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "${POSTGRES_PASSWORD:?" in text
    for service in compose["services"].values():
        for key, value in dict(service.get("environment") or {}).items():
            if key.endswith(("_TOKEN", "_SECRET", "_PASSWORD")):
                assert "${" in str(value), f"{key} must come from the environment"


def test_compose_rasa_uses_the_shipped_channels_and_actions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    rasa = services["rasa"]
    assert "./deploy/rasa:/etc/rasa:ro" in rasa["volumes"]
    command = rasa["command"]
    for option, name in (("--credentials", "credentials.yml"), ("--endpoints", "endpoints.yml")):
        path = command[command.index(option) + 1]
        assert path == f"/etc/rasa/{name}"
        assert (ROOT / "deploy" / "rasa" / name).is_file()
    credentials = yaml.safe_load((ROOT / "deploy/rasa/credentials.yml").read_text("utf-8"))
    [(channel, options)] = credentials.items()
    module, _, class_name = channel.rpartition(".")
    source = ROOT / "src" / Path(*module.split(".")).with_suffix(".py")
    assert f"class {class_name}(" in source.read_text("utf-8"), channel
    assert set(options) <= {"gateway_url", "gateway_token", "timeout"}
    assert options["gateway_url"] == "http://gateway:5006"
    endpoints = yaml.safe_load((ROOT / "deploy/rasa/endpoints.yml").read_text("utf-8"))
    host = endpoints["action_endpoint"]["url"].split("//")[1].split(":")[0]
    assert host in services, f"the action endpoint {host} is not a compose service"
    assert services["rasa-actions"]["command"][:2] == ["run", "actions"]


def test_compose_default_bot_is_the_example_bot(compose: dict[str, Any]) -> None:
    [project_volume, _] = compose["services"]["rasa"]["volumes"]
    default = project_volume.split(":-", 1)[1].split("}", 1)[0]
    bot = ROOT / default
    for name in ("domain.yml", "config.yml", "data", "actions"):
        assert (bot / name).exists(), f"{default}/{name}: compose's default bot is incomplete"


def test_rasa_image_adds_the_package_to_rasa_36() -> None:
    text = (ROOT / "deploy/rasa/Dockerfile").read_text("utf-8")
    assert "ARG RASA_IMAGE=rasa/rasa:3.6." in text
    assert "'/tmp/whatsapp-api-integration[rasa]'" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users[-1] not in ("root", "0")
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


# ---- systemd -------------------------------------------------------------------------------


def unit_values(path: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"{key}=")
    ]


def test_there_are_web_and_worker_units() -> None:
    names = {unit.name for unit in UNITS}
    assert {"whatsapp-gateway.service", "whatsapp-gateway-worker.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_unit_runs_a_gateway_command_as_its_own_user(unit: Path) -> None:
    [exec_start] = unit_values(unit, "ExecStart")
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "whatsapp-gateway"
    gateway_command_is_valid(["whatsapp-gateway", *argv[1:]])
    assert unit_values(unit, "User") == ["whatsapp-gateway"]
    assert unit_values(unit, "EnvironmentFile"), "settings come from an EnvironmentFile"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """With ExecStart pointed at this checkout's whatsapp-gateway, which verify requires."""
    executable = Path(sys.executable).with_name("whatsapp-gateway")
    if not executable.exists():
        pytest.skip(f"{executable} is not installed")
    for unit in UNITS:
        text = unit.read_text(encoding="utf-8").replace(
            "/opt/whatsapp-gateway/venv/bin/whatsapp-gateway", str(executable)
        )
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / unit.name) for unit in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for complaint in ("Unknown key", "ignoring", "Failed", "not executable"):
        assert complaint not in output, output
