"""fetch_url against a real aiohttp server on 127.0.0.1, and its SSRF refusals.

No test sends a packet to a non-loopback address: refused literals are refused before
any connection (a trace proves no request started), names go through a resolver stub.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from worker.errors import (
    ConnectionFailed,
    InvalidImage,
    ServerError,
    Transient,
    UnsafeSource,
    VendorTimeout,
)
from worker.fetch import fetch_url, parse_networks, refusal

LOOPBACK = ["127.0.0.0/8"]
BODY = b"\xff\xd8\xff" + b"x" * 5000


@dataclass
class Env:
    base: str  # http://127.0.0.1:port
    port: int
    session: aiohttp.ClientSession
    started: list[str] = field(default_factory=list)  # every request the client started

    async def fetch(self, url: str, **kw: Any) -> bytes:
        args: dict[str, Any] = {
            "max_bytes": 100_000,
            "timeout": 5.0,
            "max_redirects": 3,
            "allow_networks": LOOPBACK,
        }
        args.update(kw)
        return await fetch_url(self.session, url, **args)


def _app() -> web.Application:
    async def img(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="image/jpeg")

    async def host(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Host", ""))

    async def hops(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/img" if n == 0 else f"/hops/{n - 1}")

    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["u"])

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 200_000)

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(b"x" * 10_000)
        await resp.write_eof()
        return resp

    async def bomb(request: web.Request) -> web.Response:
        payload = gzip.compress(b"\x00" * 5_000_000)  # ~5 kB on the wire
        return web.Response(body=payload, headers={"Content-Encoding": "gzip"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=BODY)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def no_location(request: web.Request) -> web.Response:
        return web.Response(status=302)

    app = web.Application()
    app.router.add_get("/img", img)
    app.router.add_get("/host", host)
    app.router.add_get("/hops/{n}", hops)
    app.router.add_get("/to", to)
    app.router.add_get("/big", big)
    app.router.add_get("/stream", stream)
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/nolocation", no_location)
    return app


@asynccontextmanager
async def env() -> AsyncIterator[Env]:
    runner = web.AppRunner(_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    trace = aiohttp.TraceConfig()
    started: list[str] = []

    async def on_start(_s: object, _c: SimpleNamespace, params: Any) -> None:
        started.append(str(params.url))

    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        try:
            yield Env(f"http://127.0.0.1:{port}", port, session, started)
        finally:
            await runner.cleanup()


def run(test: Callable[[Env], Awaitable[None]]) -> None:
    async def main() -> None:
        async with env() as e:
            await test(e)

    asyncio.run(main())


def stub(table: dict[str, Sequence[str]], calls: list[str] | None = None) -> Any:
    """A resolver for names the tests invent; unknown names fail like NXDOMAIN."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


# ---- the allowed path -------------------------------------------------------------


def test_fetches_from_an_allowed_range() -> None:
    async def t(e: Env) -> None:
        assert await e.fetch(f"{e.base}/img") == BODY

    run(t)


def test_follows_redirects_up_to_the_limit_and_no_further() -> None:
    async def t(e: Env) -> None:
        assert await e.fetch(f"{e.base}/hops/2", max_redirects=3) == BODY  # 3 redirects
        e.started.clear()
        with pytest.raises(UnsafeSource, match="more than 2 redirects"):
            await e.fetch(f"{e.base}/hops/2", max_redirects=2)
        assert len(e.started) == 3  # the original and two redirects, then stop

    run(t)


def test_connects_to_the_checked_address_with_the_original_host_header() -> None:
    async def t(e: Env) -> None:
        calls: list[str] = []
        resolve = stub({"images.test": ["127.0.0.1"]}, calls)
        body = await e.fetch(f"http://images.test:{e.port}/host", resolve=resolve)
        assert body == f"images.test:{e.port}".encode()
        assert calls == ["images.test"]  # resolved once, by us
        assert e.started == [f"http://127.0.0.1:{e.port}/host"]  # pinned to that answer

    run(t)


# ---- refusals before any connection -------------------------------------------------

REFUSED = [
    ("http://127.0.0.1:{port}/img", "loopback"),
    ("http://127.8.9.10/", "loopback"),
    ("http://[::1]:{port}/img", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.254/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://169.254.10.20/", "link-local"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://100.127.255.254/", "CGNAT"),
    ("http://[fc00::1]/", "IPv6 unique local"),
    ("http://[fd12:3456::1]/", "IPv6 unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:127.0.0.1]:{port}/img", "IPv4-mapped"),
    ("http://[::ffff:10.0.0.1]/", "IPv4-mapped"),
    ("http://[64:ff9b::a00:1]/", "NAT64"),
    ("http://[2002:a00:1::]/", "6to4"),
    ("http://[2001:0:a00:1::]/", "Teredo"),
    ("http://0.0.0.0:{port}/img", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://192.0.2.10/", "reserved"),  # TEST-NET-1 (documentation)
    ("http://198.18.0.1/", "reserved"),  # benchmarking
]


@pytest.mark.parametrize(("template", "label"), REFUSED)
def test_refuses_address_classes_without_connecting(template: str, label: str) -> None:
    async def t(e: Env) -> None:
        with pytest.raises(UnsafeSource, match=label):
            await e.fetch(template.format(port=e.port), allow_networks=[])
        assert e.started == []  # refused before any request, even with a server listening

    run(t)


@pytest.mark.parametrize(
    ("answers", "label"),
    [
        (["169.254.169.254"], "cloud metadata"),
        (["10.0.0.7"], "private"),
        (["127.0.0.1"], "loopback"),
        (["::1"], "loopback"),
        (["93.184.216.34", "192.168.0.10"], "private"),  # one bad answer refuses the name
    ],
)
def test_refuses_names_by_their_resolved_addresses(answers: list[str], label: str) -> None:
    async def t(e: Env) -> None:
        resolve = stub({"evil.test": answers})
        with pytest.raises(UnsafeSource, match=f"evil.test .*{label}"):
            await e.fetch("http://evil.test/x.jpg", allow_networks=[], resolve=resolve)
        assert e.started == []

    run(t)


def test_localhost_via_the_system_resolver_is_refused() -> None:
    async def t(e: Env) -> None:
        with pytest.raises(UnsafeSource, match="loopback"):
            await e.fetch(f"http://localhost:{e.port}/img", allow_networks=[])
        assert e.started == []

    run(t)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "gopher://127.0.0.1:70/_x",
        "data:image/jpeg;base64,/9j/",
        "javascript:alert(1)",
        "/relative/path.jpg",
    ],
)
def test_refuses_schemes_other_than_http(url: str) -> None:
    async def t(e: Env) -> None:
        with pytest.raises(UnsafeSource, match="scheme"):
            await e.fetch(url)
        assert e.started == []

    run(t)


@pytest.mark.parametrize(
    ("target", "label"),
    [
        ("http://10.0.0.1/x", "private"),
        ("http://169.254.169.254/latest/meta-data/iam/", "cloud metadata"),
        ("http://[::1]:{port}/img", "loopback"),  # allowed range is IPv4 only
        ("http://[::ffff:127.0.0.1]:{port}/img", "IPv4-mapped"),
        ("http://metadata.test/", "cloud metadata"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:{port}/", "scheme"),
    ],
)
def test_refuses_a_redirect_to_a_refused_target(target: str, label: str) -> None:
    async def t(e: Env) -> None:
        resolve = stub({"metadata.test": ["169.254.169.254"]})
        url = f"{e.base}/to?u={target.format(port=e.port)}"
        with pytest.raises(UnsafeSource, match=label):
            await e.fetch(url, resolve=resolve)
        assert len(e.started) == 1  # only the allowed first hop was ever requested

    run(t)


# ---- caps, timeouts and failures ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/big", "200,000 bytes declared"),
        ("/stream", "more than 100,000 bytes"),
        ("/bomb", "more than 100,000 bytes"),  # counted after gzip decoding
    ],
)
def test_refuses_bodies_over_the_size_cap(path: str, message: str) -> None:
    async def t(e: Env) -> None:
        with pytest.raises(UnsafeSource, match=message):
            await e.fetch(f"{e.base}{path}")

    run(t)


def test_times_out_as_a_transient_failure() -> None:
    async def t(e: Env) -> None:
        with pytest.raises(VendorTimeout, match=r"within 0\.3 s"):
            await e.fetch(f"{e.base}/slow", timeout=0.3)

    run(t)


def test_http_errors_map_to_terminal_or_transient() -> None:
    async def t(e: Env) -> None:
        with pytest.raises(InvalidImage, match="HTTP 404") as missing:
            await e.fetch(f"{e.base}/status/404")
        assert type(missing.value) is InvalidImage
        with pytest.raises(ServerError, match="HTTP 503"):
            await e.fetch(f"{e.base}/status/503")
        with pytest.raises(ServerError, match="HTTP 429"):
            await e.fetch(f"{e.base}/status/429")
        with pytest.raises(InvalidImage, match="without Location"):
            await e.fetch(f"{e.base}/nolocation")

    run(t)


def test_network_failures_are_transient() -> None:
    async def t(e: Env) -> None:
        with socket.socket() as s:  # a loopback port with nobody listening
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        with pytest.raises(ConnectionFailed):
            await e.fetch(f"http://127.0.0.1:{closed}/img")
        with pytest.raises(ConnectionFailed, match=r"cannot resolve nxdomain\.test"):
            await e.fetch("http://nxdomain.test/", resolve=stub({}))

    run(t)
    assert issubclass(ConnectionFailed, Transient)


def test_refusal_rules_directly() -> None:
    allow = parse_networks(["127.0.0.0/8", "fd00::/8"])

    assert refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal(ipaddress.ip_address("2606:4700::1111")) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert refusal(ipaddress.ip_address("fd00::1"), allow) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow) == "private"
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allow) == "IPv4-mapped"
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks(["not-a-network"])
