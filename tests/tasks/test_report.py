"""`vrec report`: a real batch (embedded run against the simulator) written as one HTML
file, opened in headless Chromium: its DOM after load (text, pictures, nothing external,
hostile names shown as text) checked against the database, a screenshot taken, the plate
boxes found drawn in the thumbnails, and its size bounded by --max-images."""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from models import Attempt, Job
from models.db import Database
from tests.support.browser import Dom, dump_dom, screenshot
from worker.cli import app
from worker.htmlreport.thumbnails import THUMB_SIDE
from worker.settings import get_settings
from worker.simulator.directives import make_image
from worker.simulator.samples import vehicle_photo

PROVIDERS = ("juhe_plate", "aliyun_plate", "tencent_vehicle_license")
HOSTILE = "<img src=x onerror=alert(1)>.jpg"
TILE = re.compile(r'data-total="(\w+)">(\d+)<')
BOLD = "<b>bold &amp; co.jpg"


@pytest.fixture
def batch(vendor_env: dict[str, str], tmp_path: Path) -> int:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"car{i}.jpg").write_bytes(vehicle_photo(200 + i, (1200, 900)))
    (folder / BOLD).write_bytes(vehicle_photo(300, (640, 480)))
    (folder / "empty.png").write_bytes(make_image({"empty": True}))
    (folder / HOSTILE).write_text("not an image")
    Image.new("RGB", (8, 8)).save(folder / "tiny.png")
    providers = [arg for p in PROVIDERS for arg in ("-p", p)]
    result = CliRunner().invoke(app, ["run", str(folder), *providers, "--json"])
    assert result.exit_code == 0, result.output
    batch_id: int = json.loads(result.stdout)["batch_id"]
    return batch_id


def _report(batch_id: int, out: Path, *args: str) -> Dom:
    result = CliRunner().invoke(app, ["report", str(batch_id), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.output.replace("\n", "")
    return Dom(dump_dom(out, out.parent / f"profile-{out.stem}"))


def _thumbnails(dom: Dom) -> list[Image.Image]:
    images: list[Image.Image] = []
    for img in dom.all("img"):
        head, _, data = img["src"].partition(",")
        assert head == "data:image/jpeg;base64"
        images.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return images


def _box_pixels(image: Image.Image) -> int:
    """Pixels of the annotation's magenta (what JPEG leaves of it)."""
    data = image.convert("RGB").tobytes()
    pixels = zip(data[0::3], data[1::3], data[2::3], strict=True)
    return sum(1 for r, g, b in pixels if r > 190 and g < 90 and b > 140)


def test_the_report_in_a_browser_matches_the_database(batch: int, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    dom = _report(batch, page)
    tiles = dict(TILE.findall(dom.html))
    with Database(get_settings().database_url) as db, db.transaction() as s:
        jobs = s.execute(select(Job.id, Job.provider, Job.status).where(Job.batch_id == batch))
        statuses = {job_id: (provider, status) for job_id, provider, status in jobs}
        billed = s.execute(
            select(Attempt.billed).join(Job, Job.id == Attempt.job_id).where(Job.batch_id == batch)
        ).all()
    counts = Counter(status for _, status in statuses.values())
    pictured = [j for j, (_, status) in statuses.items() if status != "invalid_image"]

    # Nothing runs, nothing is fetched: no script, every picture inline.
    assert not dom.all("script")
    for _, attrs in dom.elements:
        for name in ("src", "href"):
            assert not attrs.get(name, "").lower().startswith(("http:", "https:", "//")), attrs
    # Totals and the per-provider table are the database's.
    assert {s: int(tiles[s]) for s in counts} == counts
    assert (int(tiles["calls"]), int(tiles["billed"])) == (
        len(billed),
        sum(1 for (b,) in billed if b),
    )
    text = dom.text
    assert f"Batch {batch}" in text
    assert f"{len(statuses)} jobs" in text
    for provider in PROVIDERS:
        assert dom.all("tr", **{"data-provider": provider})
    # One picture per pictured job, each a small JPEG, at most THUMB_SIDE px.
    figures = dom.all("figure")
    assert sorted(int(f["data-job"]) for f in figures) == sorted(pictured)
    thumbs = _thumbnails(dom)
    assert len(thumbs) == len(pictured)
    assert all(max(t.size) <= THUMB_SIDE for t in thumbs)
    # Hostile names are text, not markup.
    assert HOSTILE in text
    assert BOLD in text
    assert not dom.all("b")
    assert "not an image" in text
    assert "image too small" in text
    assert "(and 1 other message)" in text  # one code, two reasons: both counted

    shot = screenshot(page, tmp_path / "report.png", tmp_path / "profile-shot")
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        low, high = image.convert("L").getextrema()
        assert isinstance(low, int)
        assert isinstance(high, int)
        assert high - low > 100  # a page was drawn, not a blank


def test_plate_boxes_are_drawn_in_the_vendors_frame(batch: int, tmp_path: Path) -> None:
    dom = _report(batch, tmp_path / "boxes.html")
    figures = dom.all("figure")
    thumbs = _thumbnails(dom)
    drawn = [
        (f["data-provider"], _box_pixels(t))
        for f, t in zip(figures, thumbs, strict=True)
        if f["data-provider"] in ("juhe_plate", "aliyun_plate") and f["data-status"] == "succeeded"
    ]
    assert {provider for provider, _ in drawn} == {"juhe_plate", "aliyun_plate"}
    assert all(n > 20 for _, n in drawn), drawn


def test_the_gallery_is_capped_and_the_rest_counted(batch: int, tmp_path: Path) -> None:
    full = tmp_path / "full.html"
    _report(batch, full)
    small = tmp_path / "small.html"
    dom = _report(batch, small, "--max-images", "2")
    assert len(dom.all("img")) == 2
    pictured = len(Dom(full.read_text()).all("figure"))
    assert f"{pictured - 2} more not pictured" in dom.text
    assert small.stat().st_size < full.stat().st_size
    assert small.stat().st_size < 120_000


def test_an_unknown_batch_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "999", "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2
    assert "no batch 999" in result.output
    assert not (tmp_path / "x.html").exists()
