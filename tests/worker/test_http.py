"""worker.http.send against a real aiohttp server on 127.0.0.1: bodies and multipart parts
of any size arrive intact, and failures become our errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from worker import http
from worker.errors import ConnectionFailed, VendorTimeout
from worker.providers.base import VendorRequest


@asynccontextmanager
async def echo_server() -> AsyncIterator[str]:
    async def digest(request: web.Request) -> web.Response:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            upload = form["file"]
            assert isinstance(upload, web.FileField)
            data = upload.file.read()
            return web.json_response({"key": form["key"], "sha": hashlib.sha256(data).hexdigest()})
        return web.json_response({"sha": hashlib.sha256(await request.read()).hexdigest()})

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/digest", digest)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("size", [10, 3 << 20])
def test_bodies_and_multipart_files_arrive_intact(size: int) -> None:
    data = os.urandom(size)

    async def go() -> tuple[bytes, bytes]:
        async with echo_server() as url, aiohttp.ClientSession() as session:
            raw = VendorRequest("POST", f"{url}/digest", {"Content-Type": "image/jpeg"}, data)
            parts = (("key", "k", None, None), ("file", data, "a.jpg", "image/jpeg"))
            multi = VendorRequest("POST", f"{url}/digest", {}, multipart=parts)
            one = await http.send(session, raw, provider="t", timeout=10)
            two = await http.send(session, multi, provider="t", timeout=10)
            return one.body, two.body

    one, two = asyncio.run(go())
    sha = hashlib.sha256(data).hexdigest()
    assert sha in one.decode()
    assert sha in two.decode()
    assert '"key": "k"' in two.decode()


def test_timeouts_and_refused_connections_become_our_errors() -> None:
    async def go() -> list[BaseException]:
        errors: list[BaseException] = []
        async with echo_server() as url, aiohttp.ClientSession() as session:
            for target, timeout in ((f"{url}/slow", 0.2), ("http://127.0.0.1:9/x", 5)):
                try:
                    await http.send(
                        session, VendorRequest("POST", target, {}), provider="t", timeout=timeout
                    )
                except Exception as exc:
                    errors.append(exc)
        return errors

    slow, refused = asyncio.run(go())
    assert isinstance(slow, VendorTimeout)
    assert isinstance(refused, ConnectionFailed)
    assert refused.__cause__ is not None  # raised from the aiohttp error
