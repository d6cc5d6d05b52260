"""docker-compose.yml can't be run here (no Docker engine): load it and check what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.main import get_command

from worker.cli import app
from worker.config import Settings

ROOT = Path(__file__).resolve().parents[1]
VREC_SERVICES = {"migrate", "worker", "beat", "simulator"}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_are_the_designed_ones() -> None:
    services = _compose()["services"]
    assert set(services) == {"redis", "postgres", *VREC_SERVICES, "flower"}
    assert services["flower"]["profiles"] == ["monitoring"]  # optional


def test_vrec_services_run_real_commands_with_valid_settings() -> None:
    services = _compose()["services"]
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in VREC_SERVICES:
        service = services[name]
        assert service["build"] == "."
        assert service["command"][0] in commands, name
        env = service["environment"]
        settings = Settings.model_validate(
            {k.removeprefix("VREC_").lower(): v for k, v in env.items()}
        )
        assert settings.database_url.startswith("postgresql+psycopg://")
        assert settings.limiter_redis_url == "redis://redis:6379/1"
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_start_order_waits_for_health_and_migrations() -> None:
    services = _compose()["services"]
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_no_secrets_and_only_loopback_ports() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for marker in ("SECRET_KEY:", "SECRET_ID:", "APPCODE:", "__KEY:", "APP_SECRET:"):
        assert marker not in text
    for service in _compose()["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_beat_runs_the_schedules_and_workers_see_the_sources() -> None:
    from worker.app import celery_config

    services = _compose()["services"]
    assert services["beat"]["command"][0] == "beat"
    tasks = {entry["task"] for entry in celery_config(Settings())["beat_schedule"].values()}
    assert "vrec.schedules" in tasks
    assert any(v.endswith(":/sources:ro") for v in services["worker"]["volumes"])
