"""Scheduled ingestion through the service, on SQLite and PostgreSQL: only what is new at
each tick (new, changed, renamed, deleted files; growing manifests; folders of manifests;
manifest URLs), answers reused, exactly one run per tick when ticks race, missed ticks run
once, sources that vanish, and bad input refused with nothing stored."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Attempt, Batch, Item, Job, Schedule, ScheduleFile, ScheduleRun
from models import schedules as stored
from models.db import Database
from tests.support.services import truncate
from tests.support.storage import answer_batch, plate_answer
from worker.config import Settings
from worker.errors import ConfigError, NotFound, UsageError
from worker.service import schedules
from worker.service.schedules import run_due, run_now
from worker.settings import build_settings
from worker.simulator.samples import vehicle_photo

P = "tianapi_plate"
T0 = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # the schedules below are added then
HOURLY = "0 * * * *"


def _hour(n: int, minute: int = 0) -> datetime:
    """A moment just after the n-th hourly tick after T0 (T0 + n hours, on the hour)."""
    return T0.replace(minute=0) + timedelta(hours=n, minutes=minute, seconds=5)


def _add(
    db: Database,
    *sources: Path | str,
    name: str = "drop",
    cron: str = HOURLY,
    timezone: str = "UTC",
    globs: Sequence[str] = (),
) -> None:
    schedules.add(
        db,
        name,
        [str(s) for s in sources],
        [P],
        {},
        cron=cron,
        timezone=timezone,
        globs=globs,
        now=T0,
    )


def _tick(db: Database, settings: Settings, when: datetime) -> ScheduleRun:
    (run,) = run_due(db, settings, now=when)
    return run


def _files(run: ScheduleRun) -> dict[str, int]:
    return {
        name: getattr(run, f"files_{name}")
        for name in ("seen", "new", "changed", "skipped", "gone", "read")
    }


def _items(db: Database, batch_id: int | None) -> list[str]:
    assert batch_id is not None
    with db.transaction() as s:
        return sorted(s.scalars(select(Item.uri).where(Item.batch_id == batch_id)))


def _count(db: Database, table: type) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(vehicle_photo(seed, (320, 240)))
    return path


def test_new_changed_renamed_and_deleted_files_across_ticks(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    a, b, c, d = (
        _photo(drop / name, i) for i, name in enumerate(["a.jpg", "b.jpg", "sub/c.jpg", "d.jpg"])
    )
    (drop / ".a.jpg.partial").write_bytes(b"half an upload")  # left out: a dot file
    _add(db, drop)

    assert run_due(db, settings, now=T0 + timedelta(minutes=10)) == []  # 01:00 not come yet
    first = _tick(db, settings, _hour(1))
    assert first.outcome == "registered"
    assert _files(first) == {"seen": 4, "new": 4, "changed": 0, "skipped": 0, "gone": 0, "read": 4}
    assert _items(db, first.batch_id) == sorted(str(p) for p in (a, b, c, d))
    with db.transaction() as s:
        label = s.get_one(Batch, first.batch_id).label
    assert label == "schedule drop 2026-12-01 01:00 UTC"
    # The vendor read batch 1: its answers are paid for.
    assert first.batch_id is not None
    answer_batch(
        db, first.batch_id, lambda job: plate_answer("粤B00001", _hour(1, 5)), now=_hour(1, 5)
    )

    e = _photo(drop / "e.jpg", 10)  # new
    b.write_bytes(vehicle_photo(11, (640, 480)))  # changed: other bytes, other size
    c2 = c.rename(drop / "sub" / "c2.jpg")  # renamed: known content at a new path
    d.unlink()  # deleted
    second = _tick(db, settings, _hour(2))
    assert _files(second) == {"seen": 4, "new": 2, "changed": 1, "skipped": 1, "gone": 2, "read": 3}
    assert _items(db, second.batch_id) == sorted(str(p) for p in (b, c2, e))
    with db.transaction() as s:
        jobs = {
            uri: (status, reused)
            for uri, status, reused in s.execute(
                select(Item.uri, Job.status, Job.reused_from_job_id)
                .join(Job, (Job.batch_id == Item.batch_id) & (Job.image_id == Item.image_id))
                .where(Item.batch_id == second.batch_id)
            )
        }
        calls = s.scalar(
            select(func.count())
            .select_from(Attempt)
            .join(Job)
            .where(Job.batch_id == second.batch_id)
        )
    assert jobs[str(c2)][0] == "succeeded"  # the renamed file's answer reused, not paid again
    assert jobs[str(c2)][1] is not None
    assert (jobs[str(b)], jobs[str(e)]) == (("pending", None), ("pending", None))
    assert calls == 0

    third = _tick(db, settings, _hour(3))
    assert (third.outcome, third.batch_id) == ("nothing_new", None)
    assert _files(third) == {"seen": 4, "new": 0, "changed": 0, "skipped": 4, "gone": 0, "read": 0}

    _photo(d, 3)  # the deleted file is back: new again
    fourth = _tick(db, settings, _hour(4))
    assert _items(db, fourth.batch_id) == [str(d)]
    assert _count(db, Batch) == 3
    assert _count(db, ScheduleRun) == 4


def test_an_unchanged_file_is_not_read(db: Database, settings: Settings, tmp_path: Path) -> None:
    """Same size and mtime as at the last scan: skipped without being opened, so even
    different bytes behind unchanged facts are not seen (that is what makes a re-scan of a
    million files cheap; a real change moves the mtime)."""
    photo = _photo(tmp_path / "drop" / "a.jpg", 1)
    _add(db, photo.parent)
    _tick(db, settings, _hour(1))
    facts = photo.stat()
    data = bytearray(photo.read_bytes())
    data[-3] ^= 0xFF
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(facts.st_atime_ns, facts.st_mtime_ns))

    again = _tick(db, settings, _hour(2))
    assert (again.outcome, again.files_read, again.files_skipped) == ("nothing_new", 0, 1)

    photo.touch()  # the mtime moves: read again (same size, new bytes: a new image)
    touched = _tick(db, settings, _hour(3))
    assert (touched.files_changed, touched.files_read) == (1, 1)
    assert _items(db, touched.batch_id) == [str(photo)]


def test_globs_choose_files_by_name(db: Database, settings: Settings, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    _photo(drop / "a.JPG", 1)
    _photo(drop / "b.png", 2)
    (drop / "notes.txt").write_text("not an image")
    _add(db, drop, globs=["*.jpg", "*.png"])
    run = _tick(db, settings, _hour(1))
    assert _items(db, run.batch_id) == [str(drop / "a.JPG"), str(drop / "b.png")]


def test_concurrent_ticks_make_one_run_and_one_batch(
    db_url: str, db: Database, settings: Settings, photos: Path
) -> None:
    _add(db, photos)
    start = threading.Barrier(4)

    def tick(_: int) -> int:
        with Database(db_url) as own:
            start.wait(timeout=30)
            return len(run_due(own, settings, now=_hour(1)))

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(tick, range(4)))
    assert sorted(made) == [0, 0, 0, 1]
    assert (_count(db, ScheduleRun), _count(db, Batch)) == (1, 1)
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 4


def test_a_held_schedule_is_skipped_not_waited_for(postgres_url: str, photos: Path) -> None:
    """Another process's run holds the schedule's row (FOR UPDATE): a beat's check skips it
    at once (SKIP LOCKED) instead of queueing behind it, `schedule run` says so, and once the
    row is free the tick runs."""
    truncate(postgres_url)
    settings = build_settings(database_url=postgres_url)
    with Database(postgres_url) as db, Database(postgres_url) as other:
        _add(db, photos)
        with other.transaction() as holding:
            schedule = stored.by_name(holding, "drop")
            assert schedule is not None
            assert stored.lock(holding, schedule.id) is not None
            assert run_due(db, settings, now=_hour(1)) == []
            with pytest.raises(UsageError, match="being run by another process"):
                run_now(db, settings, "drop", now=_hour(1))
        assert _tick(db, settings, _hour(1)).outcome == "registered"
        assert _count(db, ScheduleRun) == 1


def test_missed_ticks_run_once_when_checks_resume(
    db: Database, settings: Settings, photos: Path
) -> None:
    _add(db, photos)  # hourly; first tick 01:00
    # Beat was down from 00:45 to 05:40: the ticks of 01:00 to 05:00 passed unchecked.
    (run,) = run_due(db, settings, now=_hour(5, 40))
    assert run.due_since == _hour(1) - timedelta(seconds=5)
    assert run.scheduled_for == _hour(5) - timedelta(seconds=5)
    assert run_due(db, settings, now=_hour(5, 41)) == []  # once, not once per missed tick
    with db.transaction() as s:
        schedule = stored.by_name(s, "drop")
        assert schedule is not None
        assert schedule.next_run_at == _hour(6) - timedelta(seconds=5)
    assert _tick(db, settings, _hour(6)).outcome == "nothing_new"
    assert _count(db, ScheduleRun) == 2


def test_pause_skips_ticks_and_resume_starts_at_the_next(
    db: Database, settings: Settings, photos: Path
) -> None:
    _add(db, photos)
    assert schedules.pause(db, "drop") is True
    assert schedules.pause(db, "drop") is False
    assert run_due(db, settings, now=_hour(3)) == []
    resumed = schedules.resume(db, "drop", now=_hour(3, 30))
    assert resumed.next_run_at == _hour(4) - timedelta(seconds=5)  # 01:00-03:00 not caught up
    assert run_due(db, settings, now=_hour(3, 40)) == []
    assert _tick(db, settings, _hour(4)).outcome == "registered"
    # A paused schedule still runs by hand.
    schedules.pause(db, "drop")
    assert run_now(db, settings, "drop", now=_hour(4, 30)).run.outcome == "nothing_new"


def test_a_manifest_lists_only_rows_not_seen_before(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
        _photo(images / name, 20 + i)
    manifest = tmp_path / "list.csv"
    manifest.write_text("id,path\n1,images/a.jpg\n2,images/b.jpg\n")
    _add(db, manifest)
    first = _tick(db, settings, _hour(1))
    assert _items(db, first.batch_id) == [str(images / "a.jpg"), str(images / "b.jpg")]

    with manifest.open("a") as fh:  # the manifest grows; one row repeats an earlier one
        fh.write("3,images/c.jpg\n4,images/a.jpg\n5,https://example.com/x.jpg\n")
    second = _tick(db, settings, _hour(2))
    assert _items(db, second.batch_id) == [str(images / "c.jpg"), "https://example.com/x.jpg"]
    assert _files(second) == {"seen": 5, "new": 2, "changed": 0, "skipped": 3, "gone": 0, "read": 2}
    assert _tick(db, settings, _hour(3)).outcome == "nothing_new"


def test_a_folder_of_manifests_takes_each_new_manifest_once(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    for i, name in enumerate(["a.jpg", "b.jpg"]):
        _photo(images / name, 30 + i)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "2026-12-01.csv").write_text("uri\n../images/a.jpg\nhttps://example.com/a.jpg\n")
    _add(db, inbox, globs=["*.csv"])
    # The manifests name files outside the schedule's folder: a root of their own.
    settings = settings.model_copy(update={"source_roots": [str(images)]})
    first = _tick(db, settings, _hour(1))
    assert _items(db, first.batch_id) == [str(images / "a.jpg"), "https://example.com/a.jpg"]
    assert (first.files_new, first.items) == (1, 2)

    (inbox / "2026-12-02.csv").write_text("uri\n../images/b.jpg\n")
    (inbox / "broken.csv").write_bytes(b"uri\n\xff\xfe not utf-8\n")
    second = _tick(db, settings, _hour(2))
    assert second.files_new == 2
    with db.transaction() as s:
        items = dict(
            s.execute(select(Item.uri, Item.error).where(Item.batch_id == second.batch_id)).all()
        )
    assert items[str(images / "b.jpg")] is None
    assert "manifest" in (items[str(inbox / "broken.csv")] or "")  # an item with the reason
    assert _tick(db, settings, _hour(3)).outcome == "nothing_new"

    # A row leading anywhere else is an item saying so, not a file read.
    (tmp_path / "private.jpg").write_bytes(b"secret")
    (inbox / "2026-12-03.csv").write_text("uri\n../private.jpg\n")
    third = _tick(db, settings, _hour(4))
    with db.transaction() as s:
        error = s.scalar(select(Item.error).where(Item.batch_id == third.batch_id))
    assert error == (
        f"{tmp_path / 'private.jpg'} leads outside {inbox}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)"
    )


@pytest.fixture
def manifest_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on loopback serving ``tmp_path/served``."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_manifest_url_is_fetched_behind_the_guard(
    db: Database, db_url: str, manifest_server: tuple[str, Path]
) -> None:
    base, served = manifest_server
    (served / "list.csv").write_text("url\nimages/1.jpg\nhttps://example.com/2.jpg\n")
    _add(db, f"{base}/list.csv", name="remote")

    guarded = build_settings(database_url=db_url)  # loopback is refused, as for images
    refused = _tick(db, guarded, _hour(1))
    assert refused.outcome == "failed"
    assert "cannot fetch manifest" in (refused.reason or "")
    assert "refused" in (refused.reason or "")

    allowed = build_settings(database_url=db_url, fetch_allow_networks=["127.0.0.0/8"])
    first = _tick(db, allowed, _hour(2))
    assert _items(db, first.batch_id) == [f"{base}/images/1.jpg", "https://example.com/2.jpg"]
    with (served / "list.csv").open("a") as fh:
        fh.write("images/3.jpg\n")
    second = _tick(db, allowed, _hour(3))
    assert _items(db, second.batch_id) == [f"{base}/images/3.jpg"]
    (served / "list.csv").unlink()
    gone = _tick(db, allowed, _hour(4))
    assert gone.outcome == "failed"
    assert "HTTP 404" in (gone.reason or "")


def test_a_source_that_vanishes_fails_the_run_and_the_schedule_goes_on(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    _photo(drop / "a.jpg", 1)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path\ndrop/a.jpg\n")
    _add(db, drop, manifest)
    _tick(db, settings, _hour(1))
    with db.transaction() as s:
        taken = s.scalar(select(func.count()).select_from(ScheduleFile))
    assert taken == 2

    drop.rename(tmp_path / "elsewhere")
    failed = _tick(db, settings, _hour(2))
    assert failed.outcome == "failed"
    assert failed.reason == f"cannot read folder {drop}: No such file or directory"
    assert (failed.batch_id, failed.files_seen) == (None, 0)
    with db.transaction() as s:  # nothing of it stays: the state is as the last good scan left it
        assert s.scalar(select(func.count()).select_from(ScheduleFile)) == taken

    (tmp_path / "elsewhere").rename(drop)
    _photo(drop / "b.jpg", 2)
    back = _tick(db, settings, _hour(3))  # the next tick carries on, with only what is new
    assert _items(db, back.batch_id) == [str(drop / "b.jpg")]

    manifest.unlink()
    no_manifest = _tick(db, settings, _hour(4))
    assert no_manifest.reason == f"cannot read manifest {manifest}: No such file or directory"
    manifest.write_bytes(b"")
    empty = _tick(db, settings, _hour(5))
    assert empty.reason == f"manifest {manifest}: empty"

    manifest.write_text("path\n")
    for child in drop.iterdir():
        child.unlink()
    drop.rmdir()
    drop.write_text("a file where the folder was")
    not_a_folder = _tick(db, settings, _hour(6))
    assert not_a_folder.reason == f"cannot read folder {drop}: Not a directory"
    assert [r.outcome for r in schedules.show(db, "drop").runs] == [
        "failed",
        "failed",
        "failed",
        "registered",
        "failed",
        "registered",
    ]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"name": "two words"}, ConfigError("schedule name 'two words'")),
        ({"cron": "0 2 * *"}, ConfigError("needs five fields")),
        ({"cron": "0 25 * * *"}, ConfigError("invalid cron expression '0 25 \\* \\* \\*'")),
        ({"cron": "0 2 30 2 *"}, ConfigError("never fires")),
        ({"cron": "@sometimes"}, ConfigError("unknown cron macro")),
        ({"timezone": "Asia/Atlantis"}, ConfigError("unknown time zone 'Asia/Atlantis'")),
        ({"providers": ["nope"]}, ConfigError("unknown provider 'nope'")),
        ({"options": {"card_side": "BACK"}}, ConfigError("option 'card_side' is not known")),
        ({"sources": ["missing"]}, ConfigError("no such folder or manifest: .*missing")),
        ({"sources": ["ftp://host/list.csv"]}, ConfigError("only http and https")),
        ({"sources": ["photo"]}, ConfigError("a schedule reads folders, CSV manifests")),
        ({"sources": []}, ConfigError("no source")),
        ({"globs": ["sub/*.jpg"]}, ConfigError("a pattern for file names")),
        ({"name": "drop"}, UsageError("a schedule named 'drop' already exists")),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    db: Database, photos: Path, change: dict[str, Any], refusal: UsageError
) -> None:
    _add(db, photos, name="drop")
    args: dict[str, Any] = {
        "name": "other",
        "sources": [str(photos)],
        "providers": [P],
        "options": {},
        "cron": "0 2 * * *",
        "timezone": "Asia/Shanghai",
        "globs": [],
        **change,
    }
    named = {"missing": photos / "missing", "photo": photos / "car0.jpg"}
    sources = [str(named.get(s, s)) for s in args["sources"]]
    before = (_count(db, Schedule), _count(db, stored.ScheduleSource))
    with pytest.raises(type(refusal), match=str(refusal)):
        schedules.add(
            db,
            args["name"],
            sources,
            args["providers"],
            args["options"],
            cron=args["cron"],
            timezone=args["timezone"],
            globs=args["globs"],
        )
    assert (_count(db, Schedule), _count(db, stored.ScheduleSource)) == before


def test_list_show_remove(db: Database, settings: Settings, photos: Path) -> None:
    _add(db, photos, name="b-daily", cron="0 2 * * *", timezone="Asia/Shanghai")
    _add(db, photos, name="a-hourly")
    listed = schedules.list_schedules(db)
    assert [i.schedule.name for i in listed] == ["a-hourly", "b-daily"]
    daily = listed[1].schedule
    assert daily.next_run_at == datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # 02:00 in Shanghai
    assert listed[1].last_run is None

    run_now(db, settings, "b-daily", now=_hour(1))
    shown = schedules.show(db, "b-daily")
    assert [(r.trigger, r.outcome, r.scheduled_for) for r in shown.runs] == [
        ("manual", "registered", None)
    ]
    assert shown.tracked == {shown.sources[0].id: 4}
    with db.transaction() as s:
        label = s.get_one(Batch, shown.runs[0].batch_id).label
    assert label == "schedule b-daily 2026-12-01 09:00 Asia/Shanghai (run by hand)"

    schedules.remove(db, "b-daily")
    assert [i.schedule.name for i in schedules.list_schedules(db)] == ["a-hourly"]
    assert (_count(db, ScheduleRun), _count(db, ScheduleFile), _count(db, Batch)) == (0, 0, 1)
    with pytest.raises(NotFound, match="no schedule named 'b-daily'"):
        schedules.show(db, "b-daily")
