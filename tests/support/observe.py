"""Helpers of the observability tests: real `vrec` processes with their log in a file, a
scrape of a real /metrics endpoint, and the database's own figures to compare with."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]  # (name, labels) -> value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def vrec_process(
    *args: str, log: Path, stdout: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``vrec ARGS`` as a child process, ended with SIGTERM: its stderr to ``log``, its
    stdout there too, or to ``stdout``."""
    with log.open("wb") as err, (stdout or Path(os.devnull)).open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            env=dict(os.environ) if env is None else env,
            stdout=out if stdout else err,
            stderr=err,
        )
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape(port: int, *, wait: float = 0.0) -> Samples:
    """Every sample of ``http://127.0.0.1:port/metrics``; retried for up to ``wait``
    seconds while nothing listens yet (a process starting up)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """``name``'s samples summed by the label values ``keys``, zeros left out."""
    out: dict[tuple[str, ...], float] = {}
    for (n, labels), v in samples.items():
        if n == name and v:
            found = dict(labels)
            key = tuple(found.get(k, "") for k in keys)
            out[key] = out.get(key, 0.0) + v
    return out
