"""Hostile sources through the real `vrec run` (and `vrec schedule run`), on real files:
FIFOs, devices behind symlinks, files over the size cap, symlink loops, names that are
not UTF-8, manifests in GBK or UTF-16, with NUL bytes or a field over the csv module's
limit, links and manifest paths leaving the folder, symlinked folders, and URLs carrying
credentials. Registration never blocks or crashes: each bad entry is an item with its
reason, shown in the summary, or the manifest is refused in one line; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from models import Base, Batch, Item, Job
from models.db import Database
from worker.cli import app
from worker.settings import get_settings
from worker.simulator.samples import licence_page

P = "tencent_vehicle_license"
GBK_NAME = "车牌-粤B.jpg".encode("gbk")  # not UTF-8: b'\xb3\xb5\xc5\xc6-\xd4\xc1B.jpg'


def _vrec(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def _run(*sources: str, code: int = 0) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(
        _vrec("run", *sources, "-p", P, "--json", code=code).stdout
    )
    assert not any(summary["counts"].get(s) for s in ("pending", "queued", "running"))
    return summary


def _reasons(summary: dict[str, Any]) -> dict[str, str]:
    return {f["source"]: f["reason"] for f in summary["invalid_files"]}


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(licence_page("FRONT", seed, (900, 600)))
    return path


def _rows(db_url: str, *columns: Any) -> list[Any]:
    db = Database(db_url)
    try:
        with db.transaction() as session:
            return list(session.execute(select(*columns)).all())
    finally:
        db.dispose()


@pytest.fixture
def on_db(db_url: str, vendor_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """`vrec run` against both databases, with the simulator's credentials."""
    monkeypatch.setenv("VREC_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return db_url


def test_special_files_links_and_names_in_a_folder(on_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    good = _photo(folder / "car.jpg", 80)
    gbk = os.fsencode(folder) + b"/" + GBK_NAME
    with open(gbk, "wb") as fh:
        fh.write(licence_page("FRONT", 81, (900, 600)))
    os.mkfifo(folder / "upload.jpg")  # a FIFO: opening it for reading would wait forever
    os.symlink("/dev/zero", folder / "zero.jpg")  # a device, and outside the folder
    os.symlink(folder / "loop-b.jpg", folder / "loop-a.jpg")
    os.symlink(folder / "loop-a.jpg", folder / "loop-b.jpg")
    os.symlink(good, folder / "same.jpg")  # a link inside the folder is read
    outside = _photo(tmp_path / "private" / "owner.jpg", 82)
    os.symlink(outside, folder / "escape.jpg")
    os.symlink(outside.parent, folder / "private-link")  # a folder outside: not walked
    _photo(folder / "sub" / "inner.jpg", 83)
    os.symlink(folder / "sub", folder / "sub-link")  # a folder inside: walked once, as sub
    os.symlink(folder, folder / "sub" / "up")  # a loop of folders: walked once

    summary = _run(str(folder))
    reasons = _reasons(summary)
    shown_gbk = f"file://{folder}/%B3%B5%C5%C6-%D4%C1B.jpg"
    assert reasons == {
        f"{folder}/upload.jpg": "not a regular file (a FIFO): only files are read",
        f"{folder}/zero.jpg": f"link to /dev/zero, outside {folder}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)",
        f"{folder}/loop-a.jpg": "cannot read file: Too many levels of symbolic links",
        f"{folder}/loop-b.jpg": "cannot read file: Too many levels of symbolic links",
        f"{folder}/escape.jpg": f"link to {outside}, outside {folder}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)",
        f"{folder}/private-link": f"linked folder to {outside.parent}, outside {folder}: "
        "not read (VREC_SOURCE_ROOTS can allow more roots)",
    }
    assert summary["counts"]["succeeded"] == 3  # car.jpg (and same.jpg), inner.jpg, GBK name
    uris = sorted(uri for (uri,) in _rows(on_db, Item.uri))
    assert uris == sorted(
        [
            *reasons,
            f"{folder}/car.jpg",
            f"{folder}/same.jpg",  # the link's own path, not its target
            f"{folder}/sub/inner.jpg",  # once: neither sub-link nor sub/up walked again
            shown_gbk,  # the bytes of a non-UTF-8 name, percent-escaped (RFC 8089)
        ]
    )

    # The same entries given one by one: a file named is read wherever its link leads,
    # but still only if it is a regular file.
    again = _run(os.fsdecode(gbk), str(folder / "zero.jpg"), "/dev/zero")
    assert _reasons(again) == {
        f"{folder}/zero.jpg": "not a regular file (a character device): only files are read",
        "/dev/zero": "not a regular file (a character device): only files are read",
    }
    assert again["counts"]["succeeded"] == 1  # the GBK-named file, reused from the first run
    sources = [s for (s,) in _rows(on_db, Batch.sources)]
    assert sources[-1] == [shown_gbk, f"{folder}/zero.jpg", "/dev/zero"]


def test_roots_and_the_size_cap_are_settings(
    on_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "drop"
    outside = _photo(tmp_path / "shared" / "owner.jpg", 84)
    _photo(folder / "car.jpg", 85)
    os.symlink(outside, folder / "shared.jpg")
    os.symlink(outside.parent, folder / "shared-dir")
    (folder / "big.jpg").write_bytes(licence_page("FRONT", 86, (3000, 2000)))
    size = (folder / "big.jpg").stat().st_size
    monkeypatch.setenv("VREC_SOURCE_ROOTS", json.dumps([str(outside.parent)]))
    monkeypatch.setenv("VREC_SOURCE_MAX_BYTES", str(size - 1))
    get_settings.cache_clear()

    summary = _run(str(folder))
    assert _reasons(summary) == {
        f"{folder}/big.jpg": f"file is {size:,} bytes, over the {size - 1:,}-byte limit"
    }
    assert summary["counts"]["succeeded"] == 2  # car.jpg; owner.jpg through both links
    uris = sorted(uri for (uri,) in _rows(on_db, Item.uri))
    assert uris == sorted(
        [f"{folder}/{n}" for n in ("big.jpg", "car.jpg", "shared.jpg", "shared-dir/owner.jpg")]
    )


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("gbk", b""),
        ("gb18030", b""),
        ("utf-16", b""),  # with its byte-order mark, as Excel's "Unicode text"
        ("utf-16-be", b"\xfe\xff"),
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
    ],
)
def test_manifests_in_the_encodings_offices_write(
    on_db: str, tmp_path: Path, encoding: str, prefix: bytes
) -> None:
    folder = tmp_path / "lists"
    _photo(folder / "照片" / "粤B12345.jpg", 87)
    _photo(folder / "照片" / "沪A00001.jpg", 88)
    text = "编号,path\r\n1,照片/粤B12345.jpg\r\n2,照片/沪A00001.jpg\r\n3,../../etc/passwd\r\n"
    manifest = folder / "今天.csv"
    manifest.write_bytes(prefix + text.encode(encoding))

    summary = _run(str(manifest))
    assert summary["counts"]["succeeded"] == 2
    outside = os.path.normpath(folder / "../../etc/passwd")
    assert _reasons(summary) == {
        outside: f"今天.csv line 4: ../../etc/passwd is outside {folder}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)"
    }


def test_manifests_with_nul_bytes_paths_leaving_and_unreadable_ones(
    on_db: str, tmp_path: Path
) -> None:
    folder = tmp_path / "lists"
    _photo(folder / "a.jpg", 89)
    _photo(tmp_path / "b.jpg", 90)
    nul = folder / "nul.csv"
    nul.write_bytes(b"\x00path\x00\r\n\x00a.jpg\x00\r\n\x00\x00\r\n/etc/shadow\r\n../b.jpg\r\n")
    summary = _run(str(nul))
    assert summary["counts"]["succeeded"] == 1
    assert _reasons(summary) == {
        "/etc/shadow": f"nul.csv line 4: /etc/shadow is outside {folder}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)",
        f"{tmp_path}/b.jpg": f"nul.csv line 5: ../b.jpg is outside {folder}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)",
    }

    named = os.fsencode(folder) + b"/" + "名单.csv".encode("gbk")  # a name not UTF-8
    with open(named, "wb") as fh:
        fh.write(b"path\n/etc/hostname\na.jpg\n")
    summary = _run(os.fsdecode(named))
    assert _reasons(summary) == {
        "/etc/hostname": f"\\xc3\\xfb\\xb5\\xa5.csv line 2: /etc/hostname is outside {folder}: "
        "not read (VREC_SOURCE_ROOTS can allow more roots)"
    }
    assert summary["counts"]["succeeded"] == 1  # a.jpg, reused

    long = folder / "long.csv"
    long.write_bytes(b"path\na.jpg\n" + b"x" * 200_000 + b".jpg\nb.jpg\n")
    refused = _vrec("run", str(long), "-p", P, code=2)
    assert refused.output.strip().splitlines() == [
        f"error: manifest {long}: line 3: field larger than field limit (131072)"
    ]
    binary = folder / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 64)
    refused = _vrec("run", str(binary), "-p", P, code=2)
    assert refused.output.strip().splitlines() == [
        f"error: manifest {binary}: not UTF-8, UTF-16 or GB18030 text"
    ]
    late = folder / "late.csv"  # UTF-8 for 64 KB, then a GBK line
    late.write_bytes(b"path\n" + b"a.jpg\n" * 12_000 + "车.jpg\n".encode("gbk"))
    refused = _vrec("run", str(late), "-p", P, code=2)
    assert refused.output.strip().splitlines() == [
        f"error: manifest {late}: line 12002 is not utf-8 text"
    ]
    assert len(_rows(on_db, Batch.id)) == 2  # refusals register nothing


SECRETS = ("s3cret-pw", "t0ken-value", "BEARER9TOKEN", "sig-abc123")
CREDENTIALED = [
    "https://alice:s3cret-pw@images.example.com/a.jpg",
    "https://images.example.com/b.jpg?size=2&token=t0ken-value",
    "https://BEARER9TOKEN@images.example.com/c.jpg",
    "HTTPS://images.example.com/d.jpg?X-Amz-Signature=sig-abc123&x=1",
]
REDACTED = [
    "https://alice:***@images.example.com/a.jpg",
    "https://images.example.com/b.jpg?size=2&token=***",
    "https://***@images.example.com/c.jpg",
    "HTTPS://images.example.com/d.jpg?X-Amz-Signature=***&x=1",
]


def _nothing_stored(db_url: str) -> None:
    """No secret in any row of any table."""
    db = Database(db_url)
    try:
        with db.transaction() as session:
            for table in Base.metadata.sorted_tables:
                rows = repr(session.execute(select(table)).all())
                for secret in SECRETS:
                    assert secret not in rows, (table.name, secret)
    finally:
        db.dispose()


def test_urls_with_credentials_are_stored_redacted(on_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    manifest = folder / "urls.csv"
    manifest.write_text("url\n" + "\n".join(CREDENTIALED) + "\n", encoding="utf-8")

    summary = _run(*CREDENTIALED, str(manifest))
    why = "URL carries a credential (a password or a token): vrec stores no secrets"
    assert all(reason.startswith(why) for reason in _reasons(summary).values())
    assert summary["counts"]["invalid_image"] == 2 * len(CREDENTIALED)  # each its own item
    assert sorted(uri for (uri,) in _rows(on_db, Item.uri)) == sorted(REDACTED * 2)
    assert [s for (s,) in _rows(on_db, Batch.sources)] == [[*REDACTED, str(manifest)]]
    statuses = {status for (status,) in _rows(on_db, Job.status)}
    assert statuses == {"invalid_image"}
    _nothing_stored(on_db)


def test_a_schedules_folder_of_manifests_stores_urls_redacted(on_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "today.csv").write_text("\n".join(CREDENTIALED) + "\n", encoding="utf-8")
    _photo(folder / "car.jpg", 91)
    _vrec("schedule", "add", "drops", "--source", str(folder), "-p", P, "--cron", "@daily")
    _vrec("schedule", "run", "drops")
    assert sorted(uri for (uri,) in _rows(on_db, Item.uri)) == sorted(
        [*REDACTED, f"{folder}/car.jpg"]
    )
    _nothing_stored(on_db)
