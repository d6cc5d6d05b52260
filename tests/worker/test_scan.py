"""Listing a schedule's folder: every file with its size and mtime, none opened, in the
order `vrec run` registers a folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.errors import SourceUnavailable
from worker.ingest import entries
from worker.scan import walk


def _tree(root: Path) -> None:
    for name in ["b.jpg", "a.jpg", "sub/z.jpg", "sub/deeper/y.JPG", "b0.jpg", "notes.txt"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    (root / ".uploading.jpg").write_bytes(b"partial")
    (root / ".cache").mkdir()
    (root / ".cache" / "c.jpg").write_bytes(b"hidden")


def test_order_facts_and_what_is_left_out(tmp_path: Path) -> None:
    _tree(tmp_path)
    listed = list(walk(str(tmp_path)))
    registered = [e.uri for e in entries([str(tmp_path)])]
    assert [f.path for f in listed] == [p for p in registered if "/." not in p]
    a = (tmp_path / "a.jpg").stat()
    assert (listed[0].path, listed[0].size, listed[0].mtime_ns) == (
        str(tmp_path / "a.jpg"),
        a.st_size,
        a.st_mtime_ns,
    )


def test_file_links_are_listed_and_folder_links_not_followed(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "a.jpg", tmp_path / "sub" / "link.jpg")
    listed = {Path(f.path).relative_to(tmp_path).as_posix(): f for f in walk(str(tmp_path))}
    assert "sub/link.jpg" in listed
    assert not any(name.startswith("sub/loop") for name in listed)
    assert listed["sub/link.jpg"][1:] == listed["a.jpg"][1:]  # the target's size and mtime


def test_globs_match_names_case_insensitively(tmp_path: Path) -> None:
    _tree(tmp_path)
    names = [Path(f.path).name for f in walk(str(tmp_path), ["*.jpg"])]
    assert names == ["a.jpg", "b.jpg", "b0.jpg", "z.jpg", "y.JPG"]


def test_a_folder_that_cannot_be_listed_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match=r"cannot read folder .*: No such file"):
        list(walk(str(tmp_path / "gone")))
    (tmp_path / "file").write_text("x")
    with pytest.raises(SourceUnavailable, match="Not a directory"):
        list(walk(str(tmp_path / "file")))


def test_a_name_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "车牌.jpg").write_bytes(b"fine")  # UTF-8 names are fine, of course
    assert [Path(f.path).name for f in walk(str(tmp_path))] == ["车牌.jpg"]
    (Path(os.fsdecode(bytes(tmp_path) + b"/\xb3\xb5.jpg"))).write_bytes(b"GBK-named")
    with pytest.raises(SourceUnavailable, match=r"not UTF-8: .*\\xb3\\xb5\.jpg'; rename it"):
        list(walk(str(tmp_path)))
