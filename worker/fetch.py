"""Fetch an image URL without letting it reach our own network (SSRF guard).

The rules (design.md, "untrusted input"):

- http and https only; at most ``max_bytes`` of body (counted after any decompression);
  one ``timeout`` for the whole fetch, redirects included; at most ``max_redirects``.
- Every hop's host is resolved here, every address it resolves to is checked, and the
  connection goes to the checked address itself (the URL is rewritten to the IP, the
  ``Host`` header and TLS server name keep the original name), so a DNS answer that
  changes between check and connect (rebinding) is never used.
- Refused: anything that is not a global unicast address (loopback, RFC 1918 private,
  link-local and cloud metadata, CGNAT, IPv6 ULA, unspecified, multicast, reserved,
  documentation) and IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4,
  Teredo). An operator may allow named ranges (``fetch_allow_networks``).

Refusals raise :class:`UnsafeSource` before any connection is made to the refused
address; network failures raise :class:`ConnectionFailed`, timeouts :class:`VendorTimeout`,
HTTP 5xx/408/429 :class:`ServerError`; other HTTP errors are :class:`InvalidImage`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
from yarl import URL

from worker.errors import ConnectionFailed, InvalidImage, ServerError, UnsafeSource, VendorTimeout

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024

# Named classes, for a message that says why; anything else non-global is refused too.
_CLASSES: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "cloud metadata"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("169.254.0.0/16", "link-local"),
    ("100.64.0.0/10", "CGNAT"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b::/96", "NAT64 (embeds IPv4)"),
    ("2002::/16", "6to4 (embeds IPv4)"),
    ("2001::/32", "Teredo (embeds IPv4)"),
    ("fc00::/7", "IPv6 unique local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
_NAMED = tuple((ipaddress.ip_network(net), label) for net, label in _CLASSES)


def refusal(ip: IPAddress, allow: Sequence[Network] = ()) -> str | None:
    """Why ``ip`` must not be fetched from, or None when it may be."""
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    for net, label in _NAMED:
        if ip.version == net.version and ip in net:
            return label
    if not ip.is_global or ip.is_multicast:
        return "reserved"
    return None


def parse_networks(allow: Sequence[str]) -> tuple[Network, ...]:
    """Operator ranges ("127.0.0.0/8", "::1"); a bad entry is a configuration error."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in allow)


async def _system_resolve(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def _checked_address(
    url: URL, allow: Sequence[Network], resolve: Resolve
) -> tuple[IPAddress, str | None]:
    """The address to connect to for ``url``, checked; and the name it stands for."""
    if url.scheme not in ("http", "https"):
        raise UnsafeSource(f"URL scheme {url.scheme or '(none)'!r} refused: http(s) only")
    host = url.host
    if not host:
        raise UnsafeSource("URL has no host")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        candidates, name = [literal], None
    else:
        try:
            answers = await resolve(host, url.port or 0)
        except OSError as exc:
            raise ConnectionFailed(f"cannot resolve {host}: {exc}") from exc
        candidates = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        if not candidates:
            raise ConnectionFailed(f"cannot resolve {host}: no addresses")
        name = host
    for ip in candidates:
        # One bad answer refuses the host: a name that mixes public and private
        # addresses is how rebinding attacks are staged.
        why = refusal(ip, allow)
        if why is not None:
            shown = f"{host} ({ip})" if name else str(ip)
            raise UnsafeSource(f"URL host {shown} refused: {why} address")
    return candidates[0], name


async def fetch_url(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 -- the lead's API; applied with asyncio.timeout below
    max_redirects: int,
    allow_networks: Sequence[str],
    resolve: Resolve | None = None,
) -> bytes:
    """The body of ``url``, fetched under the rules above. ``resolve``: tests' DNS stub."""
    allow = parse_networks(allow_networks)
    try:
        current = URL(url)
    except (ValueError, TypeError) as exc:
        raise UnsafeSource(f"not a valid URL: {exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            for _hop in range(max_redirects + 1):
                status, body, location = await _one_hop(
                    session, current, allow, resolve or _system_resolve, max_bytes
                )
                if location is None:
                    return _answer(status, body, current)
                try:
                    current = current.join(URL(location))
                except (ValueError, TypeError) as exc:
                    raise UnsafeSource(f"redirect to an invalid URL: {location[:100]!r}") from exc
    except TimeoutError as exc:
        raise VendorTimeout(f"fetching {_shown(current)}: no answer within {timeout:g} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionFailed(f"fetching {_shown(current)}: {type(exc).__name__}") from exc
    raise UnsafeSource(f"more than {max_redirects} redirects (last to {_shown(current)})")


async def _one_hop(
    session: aiohttp.ClientSession,
    url: URL,
    allow: Sequence[Network],
    resolve: Resolve,
    max_bytes: int,
) -> tuple[int, bytes, str | None]:
    ip, name = await _checked_address(url, allow, resolve)
    pinned = url.with_host(str(ip))
    headers = {"Accept": "image/*", "Accept-Encoding": "identity"}
    if name is not None:
        headers["Host"] = url.host_port_subcomponent or name
    async with session.get(
        pinned,
        headers=headers,
        allow_redirects=False,
        # Certificates are checked against the name, not the pinned IP.
        server_hostname=name if url.scheme == "https" else None,
        # The caller's asyncio.timeout bounds the whole fetch, redirects included;
        # the session's own (vendor-call) timeout must not cut it shorter or longer.
        timeout=aiohttp.ClientTimeout(total=None),
    ) as resp:
        if resp.status in _REDIRECTS:
            location = resp.headers.get("Location")
            if not location:
                raise InvalidImage(f"HTTP {resp.status} redirect without Location")
            return resp.status, b"", location
        if resp.status >= 400:
            return resp.status, b"", None
        declared = resp.content_length
        if declared is not None and declared > max_bytes:
            raise UnsafeSource(f"too large: {declared:,} bytes declared > {max_bytes:,}")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise UnsafeSource(f"too large: more than {max_bytes:,} bytes")
        return resp.status, bytes(body), None


def _answer(status: int, body: bytes, url: URL) -> bytes:
    if status < 400:
        return body
    where = _shown(url)
    if status >= 500 or status in (408, 429):
        raise ServerError(f"fetching {where}: HTTP {status}", http_status=status)
    raise InvalidImage(f"fetching {where}: HTTP {status}", http_status=status)


def _shown(url: URL) -> str:
    """The URL for messages: no credentials, no query (it may carry tokens)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))[:200]
