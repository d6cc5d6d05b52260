"""docker-compose.yml can't be run here (no Docker engine): load it, check it against the
Compose specification's JSON schema (the copy check-jsonschema ships), and check what it
says: profiles, health checks, no password or credential, the dry run on the simulator,
loopback-only configurable ports, metrics and node names of the workers."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.main import get_command

from worker.cli import app
from worker.config import Settings, secret_fields
from worker.providers.registry import settings_models
from worker.settings import build_settings, settings_class
from worker.simulator.environment import base_urls, variable

ROOT = Path(__file__).resolve().parents[1]
VREC_SERVICES = {
    "migrate",
    "worker",
    "beat",
    "dry-run-worker",
    "dry-run-beat",
    "simulator",
    "metrics",
}
WORKERS = ("worker", "dry-run-worker")
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def _example_env() -> dict[str, str]:
    """The variables .env.example sets (not the commented-out ones)."""
    found = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key] = value
    return found


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``, over ``value``."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"{name}: {rest}")
        return rest if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = _interpolate(_raw(), _example_env() if env is None else env)
    return data


def test_the_file_is_valid_compose() -> None:
    schema = json.loads(
        files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json").read_text()
    )
    jsonschema.validators.validator_for(schema)(schema).validate(_compose())


def test_profiles_choose_vendors_or_the_simulator() -> None:
    services = _compose()["services"]
    profiles = {name: tuple(s.get("profiles", ())) for name, s in services.items()}
    assert profiles == {
        "redis": (),
        "postgres": (),
        "migrate": (),
        "worker": ("live",),
        "beat": ("live",),
        "dry-run-worker": ("dry-run",),
        "dry-run-beat": ("dry-run",),
        "simulator": ("dry-run",),
        "metrics": ("monitoring",),
        "flower": ("monitoring",),
    }


def test_vrec_services_run_real_commands_with_valid_settings() -> None:
    services = _compose()["services"]
    commands = get_command(app).commands  # type: ignore[attr-defined]
    for name in VREC_SERVICES:
        service = services[name]
        assert service["build"] == "."
        assert service["command"][0] in commands, name
        env = service["environment"]
        settings = settings_class().model_validate(
            {k.removeprefix("VREC_").lower(): v for k, v in env.items() if "__" not in k}
        )
        assert settings.database_url.startswith("postgresql+psycopg://vrec:change-me@postgres")
        assert settings.limiter_redis_url == "redis://redis:6379/1"
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_health_checks_and_start_order() -> None:
    services = _compose()["services"]
    for name in ("redis", "postgres", "simulator", "metrics", *WORKERS, "beat", "dry-run-beat"):
        assert services[name]["healthcheck"]["test"], name
    for name in WORKERS:
        assert services[name]["healthcheck"]["test"][:4] == ["CMD", "vrec", "health", "--workers"]
    for name in ("beat", "dry-run-beat"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "vrec", "health"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in (*WORKERS, "beat", "dry-run-beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["dry-run-worker"]["depends_on"]["simulator"]["condition"] == "service_healthy"


def test_the_dry_run_calls_only_the_simulator_with_credentials_it_shares() -> None:
    services = _compose()["services"]
    expected = base_urls(build_settings(), "http://simulator:8900")
    secrets = {
        variable(p, f) for p, model in settings_models().items() for f in secret_fields(model)
    }
    simulator = services["simulator"]["environment"]
    for name in ("dry-run-worker", "dry-run-beat"):
        env = services[name]["environment"]
        assert {k: env[k] for k in expected} == expected  # every provider, no real vendor
        assert {k: env[k] for k in secrets} == {k: simulator[k] for k in secrets}
        assert all(env[k].startswith("dry-run-") for k in secrets)
    for name in ("worker", "beat"):  # the live ones: vendors' own URLs, credentials from .env
        assert not [k for k in services[name]["environment"] if "__" in k]


def test_no_password_or_credential_is_written_in_the_file() -> None:
    raw = _raw()
    secrets = {
        variable(p, f) for p, model in settings_models().items() for f in secret_fields(model)
    }
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key in secrets:  # the dry run's made-up ones only
                assert str(value).startswith("dry-run-"), (name, key)
            if "PASSWORD" in key or "://" in str(value):
                assert "change-me" not in str(value)
    postgres = raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert postgres.startswith("${POSTGRES_PASSWORD:?")
    with pytest.raises(LookupError, match=re.escape("cp .env.example .env")):
        _compose(env={})  # no .env: compose refuses, saying what to do


def test_env_example_names_real_settings_and_env_is_ignored() -> None:
    text = (ROOT / ".env.example").read_text()
    assert _example_env()["POSTGRES_PASSWORD"]
    names = set(re.findall(r"^#?(VREC_\w+)=", text, re.MULTILINE))
    assert names
    for name in names:  # each one reaches a setting
        path = name.removeprefix("VREC_").lower().split("__")
        fields = settings_class().model_fields
        assert path[0] in fields, name
        if len(path) > 1:
            block = fields[path[0]].annotation
            assert path[1] in block.model_fields, name  # type: ignore[union-attr]
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_ports_are_loopback_and_configurable() -> None:
    raw = _raw()
    for service in raw["services"].values():
        for port in service.get("ports", []):
            host, _, rest = port.partition(":")
            assert host == "127.0.0.1", port
            assert rest.startswith("${"), port  # the host port is a variable with a default
    assert _compose()["services"]["postgres"]["ports"] == ["127.0.0.1:15432:5432"]
    moved = _compose({**_example_env(), "POSTGRES_PORT": "6543"})["services"]["postgres"]
    assert moved["ports"] == ["127.0.0.1:6543:5432"]


def test_workers_serve_metrics_and_get_unique_node_names() -> None:
    services = _compose()["services"]
    for name in WORKERS:
        worker = services[name]
        command = worker["command"]
        port = command[command.index("--metrics-port") + 1]
        assert worker["expose"] == [port]
        # vrec-PID@HOST by default; a fixed -n would clash between the replicas.
        assert not {"-n", "--hostname"} & set(command)
        assert "container_name" not in worker
        assert worker["deploy"]["replicas"] >= 2


def test_beat_runs_the_schedules_and_workers_see_the_sources() -> None:
    from worker.app import celery_config

    services = _compose()["services"]
    tasks = {entry["task"] for entry in celery_config(Settings())["beat_schedule"].values()}
    assert "vrec.schedules" in tasks
    for name in ("beat", "dry-run-beat"):
        assert services[name]["command"][0] == "beat"
    for name in WORKERS:
        assert any(v.endswith(":/sources:ro") for v in services[name]["volumes"]), name
