"""The hostile corpus and URL sources through `vrec run`: every input reaches a terminal
state with its specific reason, no worker crashes, the batch goes on."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from typer.testing import CliRunner

from models import Image, Item, Job
from models.db import make_engine, make_sessions
from tests.support.faults import InjectsHeader
from tests.worker.imaging_corpus import CORPUS
from worker.cli import app
from worker.providers import registry
from worker.settings import get_settings
from worker.simulator.samples import licence_page

P = "tencent_vehicle_license"


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["run", *args, "-p", P, "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def _jobs_by_sha() -> dict[str | None, tuple[str, str | None, str]]:
    engine = make_engine(get_settings().database_url)
    try:
        with make_sessions(engine)() as s:
            on = (Item.batch_id == Job.batch_id) & (Item.image_id == Job.image_id)
            rows = s.execute(
                select(Image.sha256, Job.status, Job.last_error_message, Item.uri)
                .join(Job, Job.image_id == Image.id)
                .join(Item, on)
            )
            return {sha: (status, message, uri) for sha, status, message, uri in rows}
    finally:
        engine.dispose()


def test_corpus_batch_ends_with_a_reason_for_every_file(
    vendor_env: dict[str, str],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    expected: dict[str, tuple[str, str | None]] = {}
    for i, case in enumerate(CORPUS):
        data = case.make()
        (folder / f"{i:02d}-{re.sub(r'[^a-z0-9]+', '-', case.name.lower())}.jpg").write_bytes(data)
        expected[hashlib.sha256(data).hexdigest()] = (case.name, case.reason(P))
    summary = _run(str(folder))

    jobs = _jobs_by_sha()
    assert set(jobs) == set(expected)  # identical contents share one image and one job
    for sha, (name, reason) in expected.items():
        status, message, _ = jobs[sha]
        if reason is None:  # sent; the vendor looked and found no licence in it
            assert status == "no_result", (name, status, message)
        else:
            assert status == "invalid_image", (name, status, message)
            assert message is not None
            assert re.search(reason, message), (name, message)
    assert summary["total"] == len(expected)
    assert sum(summary["counts"].get(k, 0) for k in ("pending", "queued", "running")) == 0
    assert len(summary["invalid_files"]) == min(50, summary["counts"]["invalid_image"])


@pytest.fixture
def image_server() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving one photo and a redirect to a private range."""
    photo = licence_page("FRONT", 3, (900, 600))

    async def car(_request: web.Request) -> web.Response:
        return web.Response(body=photo, content_type="image/jpeg")

    async def to_metadata(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def to_host(request: web.Request) -> web.Response:  # ?host=... on the same path
        raise web.HTTPFound(f"http://{request.query['host']}/car.jpg")

    app = web.Application()
    app.router.add_get("/car.jpg", car)
    app.router.add_get("/to-metadata", to_metadata)
    app.router.add_get("/to-host", to_host)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_url_sources_fetched_by_the_worker_with_the_ssrf_guard(
    vendor_env: dict[str, str],
    image_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = [f"{image_server}/car.jpg", f"{image_server}/to-metadata", "ftp://example.com/a.jpg"]
    summary = _run(*urls)  # loopback not allowed: the first two are refused as well
    assert summary["counts"]["invalid_image"] == 3
    reasons = {f["source"]: f["reason"] for f in summary["invalid_files"]}
    assert "refused" in reasons[urls[0]]
    assert "ftp" in reasons[urls[2]]

    monkeypatch.setenv("VREC_FETCH_ALLOW_NETWORKS", '["127.0.0.0/8"]')
    get_settings.cache_clear()
    summary = _run(*urls[:2])
    assert summary["counts"]["succeeded"] == 1  # fetched, hashed, sent
    reasons = {f["source"]: f["reason"] for f in summary["invalid_files"]}
    assert "169.254.169.254" in reasons[urls[1]]  # the redirect hop is checked too
    fetched = [row for row in _jobs_by_sha().values() if row[2] == urls[0]]
    assert fetched[-1][0] == "succeeded"


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("a" * 64 + ".example.com", "a label over 63 characters"),
        ("a..b", "an empty label"),
        ("images.example.com..", "an empty label"),
        ("xn--" + "a" * 60 + ".example.com", "a label over 63 characters"),
    ],
)
def test_a_redirect_to_a_host_no_resolver_can_take_ends_its_item(
    vendor_env: dict[str, str],
    image_server: str,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    why: str,
) -> None:
    """Names that make the IDNA codec or getaddrinfo raise something other than OSError:
    refused before any resolver sees them, as the item's reason; the batch goes on."""
    monkeypatch.setenv("VREC_FETCH_ALLOW_NETWORKS", '["127.0.0.0/8"]')
    get_settings.cache_clear()
    redirected = f"{image_server}/to-host?host={host}"
    direct = f"http://{host}/car.jpg"
    summary = _run(redirected, f"{image_server}/car.jpg", direct)
    assert summary["counts"]["succeeded"] == 1
    assert summary["counts"]["invalid_image"] == 2
    reasons = {f["source"]: f["reason"] for f in summary["invalid_files"]}
    assert set(reasons) == {redirected, direct}
    assert all(f"refused: it has {why}" in reason for reason in reasons.values())
    assert not any(summary["counts"].get(s) for s in ("pending", "queued", "running"))


def test_an_exception_nobody_foresaw_fails_the_job_with_its_reason(
    vendor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug at the send stage (aiohttp refuses the request with a ValueError): every try
    ends with the stage and the exception's name, and after the retries the job fails
    with it; `vrec run` ends, nothing is left running."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        (folder / f"car{i}.jpg").write_bytes(licence_page("FRONT", 60 + i, (900, 600)))
    monkeypatch.setitem(registry.PROVIDERS, P, f"{InjectsHeader.__module__}:InjectsHeader")
    registry.provider_class.cache_clear()
    try:
        result = CliRunner().invoke(app, ["run", str(folder), "-p", P, "--json"])
    finally:
        registry.provider_class.cache_clear()
    assert result.exit_code == 1, result.output  # done, some failed
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"succeeded": 0, "no_result": 0, "invalid_image": 0, "failed": 2}
    (error,) = summary["errors"]
    assert error["message"] == "unexpected ValueError sending the request"
    assert error["category"] == "transient"
    engine = make_engine(get_settings().database_url)
    try:
        with make_sessions(engine)() as s:
            rows = s.execute(select(Job.status, Job.attempts, Job.retries, Job.last_error_message))
            assert (
                sorted(rows) == [("failed", 2, 2, "unexpected ValueError sending the request")] * 2
            )  # VREC_MAX_ATTEMPTS=2: two tries each, both counted as calls
    finally:
        engine.dispose()
