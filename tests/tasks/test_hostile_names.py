"""Untrusted names through the real commands (`vrec run`, `status`, `batches`, `export`,
errors) in an 80-column terminal: rich markup in paths and labels is text, escape
sequences and other control characters are shown escaped, never sent to the terminal,
and an invalid file's full path stays on one line, however long."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from worker.cli import app
from worker.simulator.samples import licence_page

P = "tencent_vehicle_license"
ESC = "\x1b"


def _vrec(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert ESC not in result.output, result.output  # no escape sequence reached the terminal
    return result


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def test_names_are_shown_as_written_and_whole(
    vendor_env: dict[str, str], tmp_path: Path, narrow: None
) -> None:
    # Deep enough that every path is longer than the 80 columns.
    folder = tmp_path / "drop" / "2026-12-02" / "camera-17" / "north-gate" / "lane-3"
    (folder / "[").mkdir(parents=True)
    outside = tmp_path / "elsewhere["
    (outside / "secret]").mkdir(parents=True)
    (outside / "secret]" / "x.jpg").write_bytes(b"not read")
    (folder / "[ok] car.jpg").write_bytes(licence_page("FRONT", 70, (900, 600)))
    names = {  # on disk -> as shown
        "[/bold]x.jpg": "[/bold]x.jpg",  # in the folder "[": the path holds "[/"
        "[backup] car.jpg": "[backup] car.jpg",
        "\x1b[31mred\x1b[0m.jpg": "\\x1b[31mred\\x1b[0m.jpg",
        "tab\there\u202egpj.txt": "tab\\there\\u202egpj.txt",
        "new\nline.jpg": "new\\nline.jpg",
    }
    for i, name in enumerate(names):
        (folder / name).write_bytes(f"not an image {i}".encode())
    os.symlink(outside / "secret]" / "x.jpg", folder / "[link]\x1b[2J.jpg")

    ran = _vrec("run", str(tmp_path / "drop"), "-p", P, "--label", "[red]\x1b[5m")
    lines = ran.stdout.splitlines()
    for shown in names.values():
        assert f"{folder}/{shown}" in lines  # whole, on its own line, at 80 columns
        assert len(f"{folder}/{shown}") > 80
    assert f"{folder}/[link]\\x1b[2J.jpg" in lines  # the link's own path, not its target
    reason = f"link to {outside}/secret]/x.jpg, outside {tmp_path / 'drop'}: not read"
    assert f"    {reason} (VREC_SOURCE_ROOTS can allow more roots)" in lines
    assert "[ok] car.jpg" not in ran.stdout  # it succeeded: not an invalid file
    summary = json.loads(_vrec("wait", "1", "--json").stdout)
    assert summary["counts"]["succeeded"] == 1
    assert summary["counts"]["invalid_image"] == len(names) + 1
    sources = {f["source"] for f in summary["invalid_files"]}
    assert f"{folder}/[backup] car.jpg" in sources  # JSON keeps the names exactly
    assert f"{folder}/\x1b[31mred\x1b[0m.jpg" in sources

    detail = _vrec("status", "1")
    assert "batch 1 ([red]\\x1b[5m)" in detail.stdout
    assert "invalid_image" in detail.stdout
    _vrec("status")
    listed = _vrec("batches")
    assert "[red]" in listed.stdout  # the label's cell folds at 80 columns, but shows it
    (batch,) = json.loads(_vrec("batches", "--json").stdout)
    assert batch["label"] == "[red]\x1b[5m"

    (tmp_path / "out[").mkdir()
    exported = _vrec("export", "1", "-o", str(tmp_path / "out[" / "b]\x1b[1m.csv"))
    assert f"exported 7 rows to {tmp_path}/out[/b]\\x1b[1m.csv" in exported.output


def test_a_refusal_naming_a_hostile_path_is_one_escaped_line(
    vendor_env: dict[str, str], tmp_path: Path, narrow: None
) -> None:
    missing = f"{tmp_path}/[/nope]\x1b[31m"
    result = _vrec("run", missing, "-p", P, code=2)
    assert result.output.strip().splitlines() == [
        f"error: no such file, folder or URL: {tmp_path}/[/nope]\\x1b[31m"
    ]
