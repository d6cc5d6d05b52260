"""Headless Chromium (Debian's ``chromium``; `.ci/run` installs it) for the tests that open
a page as a person would: the DOM after load (``--dump-dom``) and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

# What works in this sandbox: no setuid sandbox, no GPU, nothing phoning home, and a
# profile of its own for every run.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("headless Chromium is needed: apt-get install -y chromium")


def _run(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *flags, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def dump_dom(page: Path, profile: Path) -> str:
    """The page's DOM, serialised by Chromium once it has loaded."""
    return _run(page, profile, "--dump-dom").stdout


def screenshot(page: Path, out: Path, profile: Path, size: tuple[int, int] = (1280, 2400)) -> Path:
    _run(page, profile, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}")
    assert out.exists(), "Chromium wrote no screenshot"
    return out


class Dom(HTMLParser):
    """What the tests read of a DOM: its elements with their attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self._text).split())

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        """The attributes of every ``tag`` element having ``attrs``."""
        return [
            a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]
