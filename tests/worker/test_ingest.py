"""What `vrec run` registers from files, folders, CSV manifests and URLs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.ingest import entries
from worker.simulator.samples import vehicle_photo


def test_folders_manifests_and_urls(tmp_path: Path) -> None:
    photo = vehicle_photo(1, (640, 480))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.jpg").write_bytes(photo)
    (tmp_path / "a.jpg").write_bytes(photo)
    (tmp_path / "notes.txt").write_text("hello")
    manifest = tmp_path / "list.csv"
    manifest.write_text("id,Path\n1,a.jpg\n2,https://example.com/x.jpg\n3,ftp://h/y.jpg\n4,\n")

    found = list(entries([str(tmp_path / "b"), str(tmp_path / "a.jpg"), str(manifest)]))
    uris = [e.uri for e in found]
    assert uris == [
        str(tmp_path / "b" / "z.jpg"),
        str(tmp_path / "a.jpg"),
        str(tmp_path / "a.jpg"),  # the manifest's relative path, resolved next to it
        "https://example.com/x.jpg",
        "ftp://h/y.jpg",
    ]
    first = found[0].facts
    assert first is not None
    assert first.sha256 == hashlib.sha256(photo).hexdigest()
    assert (first.size, first.width, first.height, first.format) == (len(photo), 640, 480, "JPEG")
    assert found[3].facts is None  # fetched by the worker
    assert found[3].error is None
    assert found[4].error == "URL scheme 'ftp' refused: only http and https"

    text = next(entries([str(tmp_path / "notes.txt")])).facts
    assert text is not None  # registered; the worker records why it is not an image
    assert text.width is None


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file, folder or URL"):
        list(entries([str(tmp_path / "nope")]))
