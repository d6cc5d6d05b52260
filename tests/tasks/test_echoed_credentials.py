"""A vendor that echoes the credentials it was sent (the simulator's ``echo_credentials``),
for every provider, through the real `vrec run` on SQLite and PostgreSQL: once with the
right credentials (the echo rides in every answer) and once with wrong ones (the echo is
in the refusal that opens the circuit). No credential is stored in any column of any
table, nor printed by `vrec run`, `vrec status` or their --json."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select, text
from typer.testing import CliRunner

from models.db import make_engine
from tests.support.services import EXACT_SIMULATOR
from worker.cli import app
from worker.config import secret_fields
from worker.providers.registry import names, settings_models
from worker.redaction import MASK
from worker.settings import get_settings, settings_from_env
from worker.simulator.environment import base_urls, made_up_credentials, variable
from worker.simulator.samples import everything
from worker.simulator.server import SimulatorThread


def _secrets_of(provider: str) -> list[str]:
    return [variable(provider, f) for f in secret_fields(settings_models()[provider])]


@pytest.fixture
def echoing_vendor(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The simulator with every vendor echoing its callers' credentials; vrec's env."""
    env = made_up_credentials() | EXACT_SIMULATOR | {"VREC_SIMULATOR__ECHO_CREDENTIALS": "true"}
    env["VREC_MAX_ATTEMPTS"] = "1"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with SimulatorThread(settings_from_env(env)) as sim:
        for key, value in base_urls(get_settings(), sim.base_url).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        yield env


def _stored_text(url: str) -> str:
    """Every value of every row of every table, as text."""
    engine = make_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as conn:
            rows = [
                repr(tuple(row))
                for table in tables.sorted_tables
                for row in conn.execute(select(table))
            ]
    finally:
        engine.dispose()
    return "\n".join(rows)


def _vrec(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code in (0, 1, 3), result.output
    return result.output


@pytest.mark.parametrize("provider", names())
def test_a_vendor_echoing_credentials_leaves_none_stored_or_printed(
    echoing_vendor: dict[str, str],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
) -> None:
    monkeypatch.setenv("VREC_DATABASE_URL", db_url)
    get_settings.cache_clear()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "all.jpg").write_bytes(everything(40, (1800, 700)))
    shown = [_vrec("run", str(folder), "-p", provider, "--json")]
    shown.append(_vrec("run", str(folder), "-p", provider))
    answered = _stored_text(db_url)
    assert MASK in answered  # the echo came back, and was redacted before it was stored

    wrong = {key: secrets.token_hex(16) for key in _secrets_of(provider)}
    for key, value in wrong.items():  # vrec sends these; the vendor knows others
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    (folder / "new.jpg").write_bytes(everything(41, (1800, 700)))
    shown.append(_vrec("run", str(folder), "-p", provider))
    shown += [_vrec("status"), _vrec("status", "--json"), _vrec("batches", "--json")]
    stored = _stored_text(db_url)
    printed = "\n".join(shown)

    for value in [echoing_vendor[k] for k in _secrets_of(provider)] + list(wrong.values()):
        assert value not in stored
        assert value not in printed
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            refusal = conn.execute(
                text("SELECT error_message FROM provider_states WHERE provider = :p"),
                {"p": provider},
            ).scalar_one()
    finally:
        engine.dispose()
    assert MASK in refusal  # the vendor echoed the wrong credential into its refusal
    assert json.loads(_vrec("status", "--json"))  # still readable
