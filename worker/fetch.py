"""Fetch an image URL without letting it reach our own network (SSRF guard).

The rules (design.md, "untrusted input"):

- http and https only, the scheme compared case-insensitively (``HTTP://`` is http); at
  most ``max_bytes`` of body (counted after any decompression); one ``timeout`` for the
  whole fetch, redirects included; at most ``max_redirects``.
- The host, on every hop, is one of:

  * an IPv6 literal in brackets, without a zone id (``[fe80::1%eth0]`` is refused: an
    address that needs a zone is never connected to; likewise a resolver answer with one);
    ``[v1.x]`` and other bracketed forms are refused;
  * an IPv4 address in any form a browser accepts (WHATWG URL): ``127.0.0.1``,
    ``2130706433``, ``0x7f.1``, ``017700000001``; it is checked as that address. A host
    whose last label is a number but which is no such address (``1.2.3.4.5``,
    ``256.0.0.1``) is refused;
  * a DNS name (IDNs in their ASCII form): labels of 1-63 letters, digits, ``-`` or ``_``,
    253 characters in all. One trailing dot is dropped (``example.com.`` is
    ``example.com`` for resolving, the ``Host`` header, TLS and messages). Anything else
    (an empty label as in ``a..b``, a label over 63 characters, ``%`` or spaces) is
    refused before any resolver sees it.

- Every name is resolved here, every address it resolves to is checked, and the
  connection goes to the checked address itself (the URL is rewritten to the IP, the
  ``Host`` header and TLS server name keep the name), so a DNS answer that changes between
  check and connect (rebinding) is never used. One bad answer refuses the name.
- Refused: anything that is not a global unicast address (loopback, RFC 1918 private,
  link-local, cloud metadata (AWS/GCP/Azure, Aliyun, Tencent, Oracle), CGNAT, IPv6 ULA,
  site-local ``fec0::/10``, unspecified, multicast, reserved, documentation, IPv6
  outside ``2000::/3``) and every IPv6 form that embeds an IPv4 address: IPv4-compatible
  ``::/96``, IPv4-mapped ``::ffff:0:0/96``, IPv4-translated ``::ffff:0:0:0/96``, NAT64
  ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo ``2001::/32`` and
  ISATAP interface identifiers (``...:0:5efe:a.b.c.d``). An operator may allow named
  ranges (``fetch_allow_networks``, per IP version: allowing ``127.0.0.0/8`` does not
  allow ``::ffff:127.0.0.1``).

Refusals raise :class:`UnsafeSource` before any connection is made to the refused
address; network and resolver failures raise :class:`ConnectionFailed`, timeouts
:class:`VendorTimeout`, HTTP 5xx/408/429 :class:`ServerError`; other HTTP errors are
:class:`InvalidImage`, and so is anything unexpected (named by its type only), so no
failure of a fetch escapes as anything but a :class:`JobError`. Messages never carry a
URL's credentials, query or fragment.

For the rest of vrec: :func:`url_scheme` and :func:`is_http_url` tell URLs from paths;
:func:`redact_url` is a URL as it may be stored and shown.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

import aiohttp
from yarl import URL

from worker.errors import (
    ConfigError,
    ConnectionFailed,
    InvalidImage,
    JobError,
    ServerError,
    UnsafeSource,
    VendorTimeout,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024

# Named classes, for a message that says why; anything else non-global is refused too.
# More specific ranges come first (::1 is loopback, not IPv4-compatible).
_CLASSES: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "cloud metadata"),  # AWS, GCP, Azure, Huawei
    ("169.254.0.23/32", "cloud metadata"),  # Tencent Cloud
    ("100.100.100.200/32", "cloud metadata"),  # Aliyun
    ("192.0.0.192/32", "cloud metadata"),  # Oracle Cloud
    ("fd00:ec2::254/128", "cloud metadata"),  # AWS over IPv6
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
    ("::/96", "IPv4-compatible"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "NAT64"),
    ("2002::/16", "6to4"),
    ("2001::/32", "Teredo"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "IPv6 unique local"),
    ("fec0::/10", "site-local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
_NAMED = tuple((ipaddress.ip_network(net), label) for net, label in _CLASSES)
_EMBEDDING = frozenset(
    ("IPv4-compatible", "IPv4-mapped", "IPv4-translated", "NAT64", "6to4", "Teredo", "ISATAP")
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# Forms whose last 32 bits are the IPv4 address they stand for (shown in the message).
_LOW32 = tuple(
    ipaddress.ip_network(net)
    for net in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)


def refusal(ip: IPAddress, allow: Sequence[Network] = ()) -> str | None:
    """Why ``ip`` must not be fetched from (a class such as "loopback"), or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "zone-scoped"  # never connected to: the zone is this machine's own
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    for net, label in _NAMED:
        if ip.version == net.version and ip in net:
            return label
    if ip.version == 6 and _isatap(ip):
        return "ISATAP"
    if ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        return "reserved"
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "reserved"
    return None


def _isatap(ip: IPAddress) -> bool:
    # RFC 5214 interface identifier 0000:5efe or 0200:5efe (u/g bits free) + IPv4.
    return (int(ip) >> 32) & 0xFCFFFFFF == 0x5EFE


def _embedded(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries, where its position is fixed."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.teredo is not None:
        return ip.teredo[1]  # the client, where the packets would go
    if ip.sixtofour is not None:
        return ip.sixtofour
    if _isatap(ip) or any(ip in net for net in _LOW32):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_networks(allow: Sequence[str]) -> tuple[Network, ...]:
    """Operator ranges ("127.0.0.0/8", "::1"); a bad entry is a :class:`ConfigError`."""
    try:
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in allow)
    except ValueError as exc:
        raise ConfigError(f"fetch_allow_networks: {exc}") from exc


# ---- URL text: schemes and redaction ----------------------------------------------

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_START = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//")
_HOSTPORT = re.compile(r"(?:\[[0-9A-Za-z:.%_~-]*\]|[^\[\]:@]*)(?::[0-9]*)?")
_SECRET_WORDS = (
    "key",
    "token",
    "secret",
    "signature",
    "sig",
    "password",
    "passwd",
    "pwd",
    "auth",
    "credential",
    "session",
    "sessid",
)
# Names, not secrets: an access key *id* (Aliyun OSSAccessKeyId, AWSAccessKeyId) and
# AWS's list of signed header names (X-Amz-SignedHeaders).
_NOT_SECRET = re.compile(r"key[-_]?id|signedheaders")
MASK = "***"


def url_scheme(text: str) -> str | None:
    """The lower-cased scheme of ``scheme://...`` text (RFC 3986 scheme syntax), else None.

    ``HTTP://x`` gives "http", ``ftp://x`` "ftp"; a path, ``data:...`` or ``//x`` None.
    """
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an http or https URL (scheme case-insensitive)."""
    return url_scheme(text) in ("http", "https")


def redact_url(url: str) -> str:
    """``url`` for storage and display: secrets replaced by ``***``, the rest byte for byte.

    Masked: the password of the userinfo (``user:***@host``; a lone user name, the usual
    place of a token as in ``https://TOKEN@host``, becomes ``***@host``), and the value of
    every query or fragment parameter whose name (percent-decoded, case-insensitive)
    contains key, token, secret, signature, sig, password, passwd, pwd, auth, credential,
    session or sessid (PHPSESSID), except where "key" is part of "key id"
    (``OSSAccessKeyId`` is shown) and ``X-Amz-SignedHeaders`` (header names). An
    authority that is not ``host[:port]`` (a password with ``/`` in it) is masked up to
    the last ``@``. Text that is not ``scheme://...`` or ``//...`` comes back as is.
    Never raises.
    """
    start = _START.match(url)
    if start is None:
        return url
    head, rest = url[: start.end()], url[start.end() :]
    cut = _first_of(rest, "/?#")
    authority, tail = rest[:cut], rest[cut:]
    if "@" in rest and not _HOSTPORT.fullmatch(authority.rpartition("@")[2]):
        at = rest.rindex("@")
        return f"{head}{MASK}@{_mask_tail(rest[at + 1 :])}"
    return head + _mask_userinfo(authority) + _mask_tail(tail)


def _first_of(text: str, chars: str) -> int:
    found = [i for i in (text.find(c) for c in chars) if i >= 0]
    return min(found, default=len(text))


def _mask_userinfo(authority: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    if not userinfo:
        return authority
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{MASK}@{hostport}" if colon else f"{MASK}{at}{hostport}"


def _mask_tail(tail: str) -> str:
    """Path kept; query and fragment parameters masked where their name looks secret."""
    before, hash_, fragment = tail.partition("#")
    path, mark, query = before.partition("?")
    return path + mark + _mask_params(query) + hash_ + _mask_params(fragment)


def _mask_params(params: str) -> str:
    return "&".join(_mask_param(item) for item in params.split("&"))


def _mask_param(item: str) -> str:
    name, eq, value = item.partition("=")
    return f"{name}={MASK}" if eq and value and _is_secret_name(name) else item


def _is_secret_name(name: str) -> bool:
    plain = _NOT_SECRET.sub("", unquote_plus(name).lower())
    return any(word in plain for word in _SECRET_WORDS)


def _shown(url: URL) -> str:
    """The URL for messages: no credentials, no query, no fragment (they may carry tokens)."""
    try:
        bare = url.with_user(None)
    except ValueError:  # a relative URL has no user to drop
        bare = url
    return _clip(str(bare.with_query(None).with_fragment(None)), 200)


def _shown_text(text: str) -> str:
    """Like :func:`_shown`, for text that did not parse as a URL."""
    masked = redact_url(text)
    start = _START.match(masked)
    offset = start.end() if start else 0
    return _clip(masked[: offset + _first_of(masked[offset:], "?#")], 200)


def _clip(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters, control characters escaped."""
    short = text if len(text) <= limit else text[:limit] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in short)


def _reason(exc: BaseException) -> str:
    """A library error's text for a message, or only its type where it may echo the URL."""
    text = str(exc)
    if not text or "@" in text or "//" in text:
        return type(exc).__name__
    return _clip(text, 120)


# ---- hosts --------------------------------------------------------------------------

_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]*")


def _ipv4_number(part: str) -> int | None:
    """One part of a WHATWG IPv4 host: decimal, ``0x`` hex or ``0``-led octal; else None."""
    base, digits = 10, part
    if part[:2] in ("0x", "0X"):
        base, digits = 16, part[2:]
        if not digits:
            return 0
    elif len(part) > 1 and part[0] == "0":
        base, digits = 8, part[1:]
    if not digits or any(c not in _DIGITS[base] for c in digits):
        return None
    return int(digits, base)


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host ending in a number stands for (WHATWG); None for a name."""
    parts = host.split(".")
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and _ipv4_number(last) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    valid = [n for n in numbers if n is not None]
    if len(parts) > 4 or len(valid) < len(parts):
        raise _bad_host(host, "not a valid IPv4 address")
    *head, tail = valid
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(parts)):
        raise _bad_host(host, "not a valid IPv4 address (a part is out of range)")
    value = tail + sum(n << (8 * (3 - i)) for i, n in enumerate(head))
    return ipaddress.IPv4Address(value)


def _name_problem(name: str) -> str | None:
    """Why ``name`` (ASCII, no trailing dot) is not a DNS name, or None."""
    if not _NAME_CHARS.fullmatch(name):
        bad = next(c for c in name if not _NAME_CHARS.fullmatch(c))
        return f"a character not allowed in a host name: {bad!r}"
    labels = name.split(".")
    if "" in labels:
        return "an empty label"
    if any(len(label) > 63 for label in labels):
        return "a label over 63 characters"
    if len(name) > 253:
        return f"{len(name)} characters, more than 253"
    return None


def _bad_host(host: str, why: str) -> UnsafeSource:
    return UnsafeSource(f"URL host '{_clip(host)}' refused: {why}")


def _target(url: URL) -> tuple[URL, IPAddress | None]:
    """``url`` with its host normalised, and the address when the host is a literal."""
    host = url.raw_host
    if not host:
        raise UnsafeSource("URL has no host")
    if ":" in host:  # yarl keeps brackets out of the host: this was [IPv6]
        try:
            return url, ipaddress.IPv6Address(url.host or "")
        except ValueError as exc:
            raise _bad_host(host, "not a valid IPv6 address") from exc
    name = host[:-1] if host.endswith(".") else host
    problem = _name_problem(name)
    if problem is not None:
        raise _bad_host(host, f"it has {problem}")
    literal = _numeric_ipv4(name)
    if literal is not None:
        return url.with_host(str(literal)), literal
    return (url.with_host(name) if name != host else url), None


def _check_brackets(text: str, url: URL) -> None:
    """Refuse a bracketed host that yarl accepted as something other than IPv6 ([v1.x])."""
    start = _START.match(text.strip())
    if start is None:
        return
    rest = text.strip()[start.end() :]
    hostport = rest[: _first_of(rest, "/?#")].rpartition("@")[2]
    if "[" in hostport and ":" not in (url.raw_host or ""):
        raise _bad_host(hostport, "only IPv6 addresses go in brackets")


def _parse(text: str, base: URL | None = None) -> URL:
    """``text`` as an absolute http(s) URL (joined to ``base`` for a redirect's Location)."""
    what = "not a valid URL" if base is None else "redirect to an invalid URL"
    try:
        url = URL(text)
        joined = base.join(url) if base is not None else url
    except (ValueError, TypeError) as exc:
        raise UnsafeSource(f"{what} ({_shown_text(str(text))}): {_reason(exc)}") from exc
    scheme = joined.scheme.lower()
    if scheme not in ("http", "https"):
        shown = repr(scheme) if scheme else "(none)"
        raise UnsafeSource(f"URL scheme {shown} refused: only http and https")
    _check_brackets(text, joined)
    return joined


# ---- resolving and checking ----------------------------------------------------------


async def _system_resolve(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def _resolved(name: str, port: int, resolve: Resolve) -> list[IPAddress]:
    """Every address ``name`` resolves to; resolver failures become our errors."""
    try:
        answers = await resolve(name, port)
    except OSError as exc:
        raise ConnectionFailed(f"cannot resolve {name}: {_reason(exc)}") from exc
    except ValueError as exc:  # UnicodeError (IDNA) and kin: this name never resolves
        raise UnsafeSource(f"cannot resolve {name}: {type(exc).__name__}") from exc
    if not answers:
        raise ConnectionFailed(f"cannot resolve {name}: no addresses")
    try:
        return [ipaddress.ip_address(answer) for answer in answers]
    except ValueError as exc:
        raise ConnectionFailed(f"cannot resolve {name}: the resolver answered junk") from exc


async def _checked(
    url: URL, allow: Sequence[Network], resolve: Resolve
) -> tuple[URL, IPAddress, str | None]:
    """``url`` normalised, the checked address to connect to, and the name it stands for."""
    raw = url.raw_host or ""
    given = (url.host or raw) if ":" in raw else raw  # an IPv6 zone shown decoded
    url, literal = _target(url)
    name: str | None = None
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        name = url.raw_host or ""
        candidates = await _resolved(name, url.port or 0, resolve)
    for ip in candidates:
        # One bad answer refuses the host: a name that mixes public and private
        # addresses is how rebinding attacks are staged.
        why = refusal(ip, allow)
        if why is not None:
            shown = _host_shown(name or _clip(given), ip)
            raise UnsafeSource(f"URL host {shown} refused: {_phrase(why, ip)}")
    return url, candidates[0], name


def _host_shown(host: str, ip: IPAddress) -> str:
    """``name (ip)``; a literal as is, or with its address when given in another form."""
    return str(ip) if host == str(ip) else f"{host} ({ip})"


def _phrase(why: str, ip: IPAddress) -> str:
    inner = _embedded(ip) if why in _EMBEDDING else None
    return f"{why} address" + (f" embedding {inner}" if inner is not None else "")


# ---- fetching -------------------------------------------------------------------------


@dataclass
class _Fetch:
    session: aiohttp.ClientSession
    allow: tuple[Network, ...]
    resolve: Resolve
    max_bytes: int
    max_redirects: int
    current: URL | None = None  # the hop being fetched, for messages

    async def run(self, url: str) -> bytes:
        current = _parse(url)
        for _hop in range(self.max_redirects + 1):
            self.current = current
            current, ip, name = await _checked(current, self.allow, self.resolve)
            self.current = current
            status, body, location = await self.hop(current, ip, name)
            if location is None:
                return _answer(status, body, current)
            current = _parse(location, current)
        raise UnsafeSource(f"more than {self.max_redirects} redirects (last to {_shown(current)})")

    def where(self, text: str) -> str:
        """The URL being fetched, for a message."""
        return _shown(self.current) if self.current is not None else _shown_text(str(text))

    async def hop(self, url: URL, ip: IPAddress, name: str | None) -> tuple[int, bytes, str | None]:
        """One request to the checked address ``ip``: (status, body, redirect target)."""
        headers = {"Accept": "image/*", "Accept-Encoding": "identity", **_basic_auth(url)}
        if name is not None:
            headers["Host"] = url.host_port_subcomponent or name
        async with self.session.get(
            url.with_user(None).with_host(str(ip)),
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
            return resp.status, await self.body(resp), None

    async def body(self, resp: aiohttp.ClientResponse) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > self.max_bytes:
            raise UnsafeSource(f"too large: {declared:,} bytes declared > {self.max_bytes:,}")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                raise UnsafeSource(f"too large: more than {self.max_bytes:,} bytes")
        return bytes(body)


def _basic_auth(url: URL) -> dict[str, str]:
    """The URL's user:password as an HTTP Basic header, UTF-8 (RFC 7617), not in the URL."""
    if url.raw_user is None and url.raw_password is None:
        return {}
    user, password = url.user or "", url.password or ""
    if ":" in user:
        raise UnsafeSource("URL credentials cannot be sent: a ':' in the user name")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


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
    """The body of ``url``, fetched under the rules above. ``resolve``: tests' DNS stub.

    Raises only :class:`JobError` subclasses (and :class:`ConfigError` for a bad
    ``allow_networks`` entry).
    """
    fetch = _Fetch(
        session,
        parse_networks(allow_networks),
        resolve or _system_resolve,
        max_bytes,
        max_redirects,
    )
    try:
        async with asyncio.timeout(timeout):
            return await fetch.run(url)
    except JobError:
        raise
    except TimeoutError as exc:
        raise VendorTimeout(f"fetching {fetch.where(url)}: no answer within {timeout:g} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionFailed(f"fetching {fetch.where(url)}: {type(exc).__name__}") from exc
    except Exception as exc:  # last resort: the job ends with a reason, the task goes on
        raise InvalidImage(f"fetching {fetch.where(url)}: unexpected {type(exc).__name__}") from exc


def _answer(status: int, body: bytes, url: URL) -> bytes:
    if status < 400:
        return body
    where = _shown(url)
    if status >= 500 or status in (408, 429):
        raise ServerError(f"fetching {where}: HTTP {status}", http_status=status)
    raise InvalidImage(f"fetching {where}: HTTP {status}", http_status=status)
