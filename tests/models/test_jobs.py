"""A job's life in the database, on SQLite and PostgreSQL: batch, claim, finish, retry,
circuit, dispatch window, reconciliation. The pipeline's output is built by hand here;
the end-to-end tests run the real one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from models import Attempt, Image, Item, Job, Result, VehicleLicense, jobs, queue, reports
from models.batches import create_batch
from models.db import make_engine, make_sessions, transaction
from tests.support.services import truncate
from tests.support.storage import claim_one, finish_chunk, finish_one, source, status_counts
from worker.errors import InvalidImage, Outcome, ProviderUnavailable, RateLimited, ServerError
from worker.jobrun import CallFacts, JobRun
from worker.lifecycle import TERMINAL, CircuitOpening, JobStatus
from worker.providers.base import VehicleLicenseReading, VendorAnswer
from worker.settings import build_settings
from worker.sources import Source, SourceFacts

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
P = "tencent_vehicle_license"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessions(engine)
    engine.dispose()


def _entries(n: int) -> list[Source]:
    return [
        source(uri=f"/img/{i}.jpg", sha256=f"{i:064x}", size=100 + i, width=800, height=500)
        for i in range(n)
    ]


def _batch(sessions: sessionmaker[Session], n: int = 3) -> list[int]:
    with transaction(sessions) as s:
        batch = create_batch(s, _entries(n), {P: {"card_side": "FRONT"}}, label="t")
        return list(s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))


def _call(billed: bool = True) -> CallFacts:
    return CallFacts(NOW, 12.5, 200, None, "req-1", billed)


def _claim(sessions: sessionmaker[Session], job_id: int, now: datetime = NOW) -> jobs.ClaimedJob:
    with transaction(sessions) as s:
        claimed = claim_one(s, job_id, owner=f"w{job_id}", now=now, lease_seconds=60)
    assert claimed is not None
    return claimed


def _finish(sessions: sessionmaker[Session], claimed: jobs.ClaimedJob, run: JobRun) -> str | None:
    with transaction(sessions) as s:
        return finish_one(s, claimed, run, now=NOW, worker="w")


def test_batch_dedupes_content_and_records_unreadable_files(
    sessions: sessionmaker[Session],
) -> None:
    entries = [*_entries(2), source(uri="/img/copy.jpg", sha256=f"{0:064x}", size=100)]
    entries.append(source(uri="/img/locked.jpg", error="cannot read file: Permission denied"))
    with transaction(sessions) as s:
        batch = create_batch(s, entries, {P: {}, "juhe_car": {}})
        batch_id = batch.id
    with transaction(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 3
        counts = status_counts(s, batch_id)
        assert counts["pending"] == 4  # 2 distinct images x 2 providers
        assert counts["invalid_image"] == 2  # the unreadable file, for each provider
        assert reports.invalid_files(s, batch_id)[0] == (
            "/img/locked.jpg",
            "cannot read file: Permission denied",
        )


def test_registration_across_chunks_keeps_one_image_per_content_and_url(
    sessions: sessionmaker[Session],
) -> None:
    # 1,200 entries span three of create_batch's 500-entry chunks; duplicates sit both
    # within a chunk and across chunks, and one content is known from an earlier batch.
    with transaction(sessions) as s:
        create_batch(s, [source(uri="/old/7.jpg", sha256=f"{7:064x}", size=1)], {P: {}})
    entries = [source(uri=f"/img/{i}.jpg", sha256=f"{i % 900:064x}", size=i) for i in range(1200)]
    entries[10] = source(uri="https://cdn.example/a.jpg")  # URL: no content yet
    entries[700] = source(uri="https://cdn.example/a.jpg")  # the same URL, later chunk
    entries[20] = source(uri="/img/bad.jpg", error="cannot read file: EIO")
    entries[1100] = source(uri="/img/bad.jpg", error="cannot read file: EIO")
    with transaction(sessions) as s:
        batch_id = create_batch(s, entries, {P: {}, "juhe_car": {"x": "1"}}).id
    with transaction(sessions) as s:
        # Contents 0..899 but 700 (replaced, no twin; 10 and 20 have twins at 910 and 920),
        # one of them the earlier batch's row; one row for the URL; one per unreadable entry.
        assert s.scalar(select(func.count()).select_from(Image)) == 899 + 1 + 2
        seven = s.scalars(select(Image).where(Image.sha256 == f"{7:064x}")).one()
        first = s.scalars(select(Item.uri).where(Item.image_id == seven.id).order_by(Item.id))
        assert first.first() == "/old/7.jpg"  # the earlier batch's image: not added again
        batch_jobs = s.scalars(select(Job).where(Job.batch_id == batch_id)).all()
        assert len(batch_jobs) == 2 * (899 + 1 + 2)
        assert len({(j.image_id, j.provider) for j in batch_jobs}) == len(batch_jobs)
        assert all(j.options == {"x": "1"} for j in batch_jobs if j.provider == "juhe_car")
        counts = status_counts(s, batch_id)
        assert (counts["pending"], counts["invalid_image"]) == (2 * 900, 2 * 2)
        bad = [j for j in batch_jobs if j.status == "invalid_image"]
        assert {j.last_error_message for j in bad} == {"cannot read file: EIO"}
        assert all(j.finished_at is not None for j in bad)
        good = [j for j in batch_jobs if j.status == "pending"]
        assert all(j.finished_at is None and j.last_error_message is None for j in good)


def test_the_same_url_in_two_batches_is_two_images_also_in_one_transaction(
    sessions: sessionmaker[Session],
) -> None:
    # A URL's image is known only once fetched: each batch that names it gets its own,
    # within the batch once however often it is named; two registrations in one
    # transaction keep theirs apart (the lookup of the batch's URLs ends with it).
    url = "https://cdn.example/shared.jpg"
    entries = [source(uri=url), source(uri="https://cdn.example/other.jpg"), source(uri=url)]
    with transaction(sessions) as s:
        first = create_batch(s, entries, {P: {}}).id
        second = create_batch(s, entries[:1], {P: {}}).id
    with transaction(sessions) as s:
        images = {
            batch: set(s.scalars(select(Item.image_id).where(Item.batch_id == batch)))
            for batch in (first, second)
        }
        assert [len(images[first]), len(images[second])] == [2, 1]
        assert not images[first] & images[second]
        assert s.scalar(select(func.count()).select_from(Item).where(Item.uri == url)) == 3


def test_success_writes_result_readings_attempt_and_status_in_one_go(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    reading = VehicleLicenseReading(
        side="FRONT", plate_no="沪AA1234", vin="ABCDEFGH123456789", register_date=date(2011, 10, 10)
    )
    reading.warn_codes = [-9102]
    answer = VendorAnswer(
        Outcome.SUCCEEDED, {"Response": {"RequestId": "r"}}, [reading], request_id="r", billed=True
    )
    assert _finish(sessions, claimed, JobRun(answer=answer, call=_call())) == "succeeded"

    with transaction(sessions) as s:
        job = s.get_one(Job, job_id)
        assert (job.status, job.attempts, job.lease_owner, job.finished_at) == (
            "succeeded",
            1,
            None,
            NOW,
        )
        row = s.scalars(select(VehicleLicense)).one()
        assert (row.plate_no, row.vin, row.register_date, row.warn_codes) == (
            "沪AA1234",
            "ABCDEFGH123456789",
            date(2011, 10, 10),
            [-9102],
        )
        assert s.scalars(select(Result)).one().raw == {"Response": {"RequestId": "r"}}
        attempt = s.scalars(select(Attempt)).one()
        assert (attempt.number, attempt.billed, attempt.vendor_request_id) == (1, True, "req-1")


def test_second_claim_and_stale_finish_do_nothing(sessions: sessionmaker[Session]) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    with transaction(sessions) as s:  # a duplicate message while the lease is held
        assert claim_one(s, job_id, owner="other", now=NOW, lease_seconds=60) is None
    with transaction(sessions) as s:  # the lease expires and the reconciler takes it back
        assert queue.reconcile(s, NOW + timedelta(minutes=5), queued_timeout=900) == 1
    answer = VendorAnswer(Outcome.NO_RESULT, {})
    assert _finish(sessions, claimed, JobRun(answer=answer, call=_call())) is None
    with transaction(sessions) as s:
        assert s.get_one(Job, job_id).status == "pending"
        assert s.scalar(select(func.count()).select_from(Result)) == 0
        # The vendor saw the call all the same: it is recorded, numbered the job's next.
        attempt = s.scalars(select(Attempt)).one()
        assert (attempt.number, attempt.outcome, attempt.billed) == (1, "no_result", True)


def _start(sessions: sessionmaker[Session], claimed: jobs.ClaimedJob) -> int:
    with transaction(sessions) as s:
        return jobs.start_attempt(s.connection(), claimed, started_at=NOW, worker="w")


def test_a_call_is_written_down_before_it_is_sent_and_completed_in_place(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    attempt_id = _start(sessions, claimed)
    with transaction(sessions) as s:
        row = s.get_one(Attempt, attempt_id)
        assert (row.job_id, row.number, row.outcome, row.billed) == (job_id, 1, "in_flight", None)
        calls = s.execute(text("SELECT calls, lost_calls FROM v_batch_calls")).one()
        assert tuple(calls) == (1, 1)  # counted while in flight
    answer = VendorAnswer(Outcome.SUCCEEDED, {})
    with transaction(sessions) as s:
        run = JobRun(answer=answer, call=_call())
        assert finish_one(s, claimed, run, now=NOW, worker="w", attempt_id=attempt_id)
    with transaction(sessions) as s:
        row = s.scalars(select(Attempt)).one()  # the same row, now complete
        assert (row.id, row.number, row.outcome, row.billed) == (attempt_id, 1, "succeeded", True)
        assert (row.http_status, row.duration_ms, row.vendor_request_id) == (200, 12.5, "req-1")
        calls = s.execute(text("SELECT calls, billed_calls, lost_calls FROM v_batch_calls")).one()
        assert tuple(calls) == (1, 1, 0)


def test_a_call_written_down_and_then_not_made_leaves_no_row(
    sessions: sessionmaker[Session],
) -> None:
    withdrawn_job, given_back_job = _batch(sessions, 2)
    # Its slot forfeited after the write: the row is withdrawn before the next slot.
    withdrawn = _claim(sessions, withdrawn_job)
    attempt_id = _start(sessions, withdrawn)
    with transaction(sessions) as s:
        jobs.withdraw_attempt(s.connection(), attempt_id)
    # Its withdrawal failed and the job ended without a call (given back): the row goes
    # with the job's outcome.
    given_back = _claim(sessions, given_back_job)
    attempt_id = _start(sessions, given_back)
    with transaction(sessions) as s:
        run = JobRun(give_back=5.0)
        assert finish_one(s, given_back, run, now=NOW, worker="w", attempt_id=attempt_id)
    with transaction(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Attempt)) == 0
        assert s.get_one(Job, given_back_job).status == "pending"
        calls = s.execute(text("SELECT calls, lost_calls FROM v_batch_calls")).one()
        assert tuple(calls) == (0, 0)


def test_calls_of_a_lease_taken_back_are_lost_and_counted_among_the_jobs_calls(
    sessions: sessionmaker[Session],
) -> None:
    expired_job, released_job, done_job = _batch(sessions, 3)
    expired = _claim(sessions, expired_job)
    _start(sessions, expired)
    with transaction(sessions) as s:
        released = claim_one(s, released_job, owner="host:1/abc", now=NOW, lease_seconds=600)
    assert released is not None
    _start(sessions, released)
    done = _claim(sessions, done_job)
    done_attempt = _start(sessions, done)
    with transaction(sessions) as s:  # this one answers before anything is taken back
        run = JobRun(answer=VendorAnswer(Outcome.SUCCEEDED, {}), call=_call())
        finish_one(s, done, run, now=NOW, worker="w", attempt_id=done_attempt)
    with transaction(sessions) as s:  # the stopping worker hands back its leases
        assert queue.release_leases(s, "host:1/", NOW) == 1
    with transaction(sessions) as s:  # the other lease expires
        assert queue.reconcile(s, NOW + timedelta(minutes=5), queued_timeout=900) == 1
    with transaction(sessions) as s:
        outcomes = {j: o for j, o in s.execute(select(Attempt.job_id, Attempt.outcome))}
        assert outcomes == {expired_job: "lost", released_job: "lost", done_job: "succeeded"}
        lost = s.scalars(select(Attempt).where(Attempt.outcome == "lost")).all()
        assert {a.billed for a in lost} == {None}
        assert all("billing unknown" in (a.error_message or "") for a in lost)
        assert s.get_one(Job, expired_job).attempts == 1  # the lost call counts
        assert s.get_one(Job, released_job).status == "pending"
        calls = s.execute(text("SELECT calls, billed_calls, lost_calls FROM v_batch_calls")).one()
        assert tuple(calls) == (3, 1, 2)
    again = _claim(sessions, expired_job, NOW + timedelta(minutes=6))
    assert again.attempts == 1
    _start(sessions, again)
    with transaction(sessions) as s:
        numbers = s.scalars(select(Attempt.number).where(Attempt.job_id == expired_job))
        assert sorted(numbers) == [1, 2]


def test_a_slow_worker_finishing_after_its_lease_was_taken_replaces_lost_with_the_answer(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    attempt_id = _start(sessions, claimed)
    with transaction(sessions) as s:
        assert queue.reconcile(s, NOW + timedelta(minutes=5), queued_timeout=900) == 1
    run = JobRun(error=RateLimited("slow down", provider=P), call=_call(billed=False))
    with transaction(sessions) as s:
        assert finish_one(s, claimed, run, now=NOW, worker="w", attempt_id=attempt_id) is None
    with transaction(sessions) as s:
        row = s.get_one(Attempt, attempt_id)
        assert (row.outcome, row.billed, row.error_message) == ("rate_limited", False, "slow down")
        job = s.get_one(Job, job_id)
        assert (job.status, job.attempts) == ("pending", 1)  # the reconciler's, untouched


def test_transient_retries_with_backoff_then_fails_keeping_the_last_error(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _batch(sessions, 1)[0]
    settings = build_settings()
    for attempt in range(1, settings.max_attempts + 1):
        claimed = _claim(sessions, job_id, now=NOW + timedelta(days=attempt))
        error = ServerError("HTTP 503", provider=P, http_status=503)
        status = _finish(sessions, claimed, JobRun(error=error, call=_call(False)))
        with transaction(sessions) as s:
            job = s.get_one(Job, job_id)
            if attempt < settings.max_attempts:
                assert status == "pending"
                assert job.not_before is not None
                assert job.not_before > NOW
            else:
                assert status == "failed"
                assert job.last_error_category == "transient"
                assert "HTTP 503" in (job.last_error_message or "")
                assert job.attempts == settings.max_attempts


def test_invalid_image_is_terminal_without_a_call(sessions: sessionmaker[Session]) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    source = SourceFacts(sha256="0" * 64, size=3)
    run = JobRun(error=InvalidImage("not an image (content looks like text)"), source=source)
    assert _finish(sessions, claimed, run) == "invalid_image"
    with transaction(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Attempt)) == 0
        assert s.get_one(Job, job_id).last_error_message == "not an image (content looks like text)"


def test_provider_unavailable_opens_the_circuit_and_keeps_jobs_pending(
    sessions: sessionmaker[Session],
) -> None:
    ids = _batch(sessions, 3)
    claimed = _claim(sessions, ids[0])
    error = ProviderUnavailable("SecretId not found", vendor_code="AuthFailure.SecretIdNotFound")
    assert _finish(sessions, claimed, JobRun(error=error, call=_call(False))) == "pending"
    with transaction(sessions) as s:
        assert [st.provider for st in reports.open_circuits(s, NOW)] == [P]
        assert queue.providers_due(s, NOW, [P, "juhe_car"]) == []  # nothing is dispatched for it
        assert claim_one(s, ids[1], owner="x", now=NOW, lease_seconds=60) is None
        assert s.get_one(Job, ids[1]).status == "pending"
        assert queue.reset_circuit(s, P)
    with transaction(sessions) as s:
        assert queue.providers_due(s, NOW, [P, "juhe_car"]) == [P]


def test_rate_limited_returns_to_pending_after_the_vendor_hint(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    error = RateLimited("too fast", vendor_code="RequestLimitExceeded", retry_after=7)
    assert _finish(sessions, claimed, JobRun(error=error, call=_call(False))) == "pending"
    with transaction(sessions) as s:
        assert s.get_one(Job, job_id).not_before == NOW + timedelta(seconds=7)


def test_give_back_makes_no_attempt(sessions: sessionmaker[Session]) -> None:
    job_id = _batch(sessions, 1)[0]
    claimed = _claim(sessions, job_id)
    assert _finish(sessions, claimed, JobRun(give_back=3.0)) == "pending"
    with transaction(sessions) as s:
        job = s.get_one(Job, job_id)
        assert (job.attempts, job.not_before) == (0, NOW + timedelta(seconds=3))


def test_dispatch_window_and_lost_messages(sessions: sessionmaker[Session]) -> None:
    ids = _batch(sessions, 5)
    with transaction(sessions) as s:
        assert queue.mark_queued(s, P, 3, NOW) == ids[:3]
        assert queue.in_flight(s, P) == 3
        assert queue.mark_queued(s, P, 3, NOW) == ids[3:]
    with transaction(sessions) as s:  # messages never arrived: back to pending after a while
        assert queue.reconcile(s, NOW + timedelta(seconds=60), queued_timeout=900) == 0
        assert queue.reconcile(s, NOW + timedelta(seconds=901), queued_timeout=900) == 5
        assert status_counts(s)["pending"] == 5
    assert JobStatus.SUCCEEDED in TERMINAL


def test_claim_many_takes_only_what_is_ours(sessions: sessionmaker[Session]) -> None:
    ids = _batch(sessions, 4)
    with transaction(sessions) as s:
        queue.mark_queued(s, P, 4, NOW)
    _claim(sessions, ids[1])  # already running elsewhere
    with transaction(sessions) as s:
        claimed = jobs.claim_many(s.connection(), ids, owner="w", now=NOW, lease_seconds=60)
    assert [c.job_id for c in claimed] == [ids[0], ids[2], ids[3]]
    assert {c.source_uri for c in claimed} == {"/img/0.jpg", "/img/2.jpg", "/img/3.jpg"}
    assert claimed[0].options == {"card_side": "FRONT"}

    more = _batch(sessions, 2)
    with transaction(sessions) as s:
        queue.mark_queued(s, P, 2, NOW)
        jobs.open_circuit(s, CircuitOpening(P, NOW, NOW + timedelta(seconds=60), None, "arrears"))
    with transaction(sessions) as s:
        assert jobs.claim_many(s.connection(), more, owner="w", now=NOW, lease_seconds=60) == []
        assert {s.get_one(Job, i).status for i in more} == {"pending"}  # back, not stuck


def test_finish_many_stores_a_mixed_chunk_and_only_the_call_of_a_lost_lease(
    sessions: sessionmaker[Session],
) -> None:
    ids = _batch(sessions, 6)
    with transaction(sessions) as s:
        queue.mark_queued(s, P, 6, NOW)
        claimed = jobs.claim_many(s.connection(), ids, owner="w", now=NOW, lease_seconds=60)
    with transaction(sessions) as s:  # job 4's lease is taken back and given to another worker
        s.get_one(Job, ids[4]).lease_owner = "thief"

    def plate(no: str) -> VehicleLicenseReading:
        return VehicleLicenseReading(side="FRONT", plate_no=no)

    answers = [VendorAnswer(Outcome.SUCCEEDED, {"n": i}, [plate(f"沪A0000{i}")]) for i in range(2)]
    runs = [
        JobRun(answer=answers[0], call=_call()),
        JobRun(answer=answers[1], call=_call()),
        JobRun(error=ServerError("HTTP 502", provider=P, http_status=502), call=_call(False)),
        JobRun(error=InvalidImage("truncated JPEG")),
        JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {}), call=_call()),
        JobRun(give_back=4.0),  # the limiter had no slot soon enough: no call
    ]
    with transaction(sessions) as s:
        statuses = finish_chunk(s, list(zip(claimed, runs, strict=True)), now=NOW, worker="w")
    assert statuses == ["succeeded", "succeeded", "pending", "invalid_image", None, "pending"]

    with transaction(sessions) as s:
        got = {j.id: (j.status, j.attempts, j.lease_owner) for j in s.scalars(select(Job))}
        assert got == {
            ids[0]: ("succeeded", 1, None),
            ids[1]: ("succeeded", 1, None),
            ids[2]: ("pending", 1, None),
            ids[3]: ("invalid_image", 0, None),
            ids[4]: ("running", 0, "thief"),
            ids[5]: ("pending", 0, None),
        }
        assert s.get_one(Job, ids[2]).last_error_message == "HTTP 502"
        assert s.get_one(Job, ids[5]).not_before == NOW + timedelta(seconds=4)
        # Each reading points at its own job's result, in order.
        pairs = s.execute(
            select(Result.job_id, Result.raw, VehicleLicense.plate_no)
            .join(VehicleLicense, VehicleLicense.result_id == Result.id)
            .order_by(Result.job_id)
        ).all()
        assert [tuple(p) for p in pairs] == [
            (ids[0], {"n": 0}, "沪A00000"),
            (ids[1], {"n": 1}, "沪A00001"),
        ]
        # Job 4's call is recorded (the vendor saw it), nothing else of its run.
        assert sorted(s.scalars(select(Attempt.job_id))) == [*ids[:3], ids[4]]


def test_finish_many_of_one_job_writes_it_only_while_its_lease_holds(
    sessions: sessionmaker[Session],
) -> None:
    # A chunk of one (what every provider at vendor rates gets) checks the lease in the
    # job's UPDATE itself, where larger chunks lock their rows first.
    held, lost = (_claim(sessions, i) for i in _batch(sessions, 2))
    with transaction(sessions) as s:
        s.get_one(Job, lost.job_id).lease_owner = "thief"
    run = JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {}), call=_call())
    for claimed, expected in ((held, ["no_result"]), (lost, [None])):
        with transaction(sessions) as s:
            assert finish_chunk(s, [(claimed, run)], now=NOW, worker="w") == expected
    with transaction(sessions) as s:
        got = {j.id: (j.status, j.attempts, j.lease_owner) for j in s.scalars(select(Job))}
        assert got == {held.job_id: ("no_result", 1, None), lost.job_id: ("running", 0, "thief")}
        assert sorted(s.scalars(select(Result.job_id))) == [held.job_id]
        # The lost lease's call is recorded all the same: the vendor saw it.
        assert sorted(s.scalars(select(Attempt.job_id))) == [held.job_id, lost.job_id]


def test_reconcile_skips_a_lapsed_job_that_a_worker_is_finishing(postgres_url: str) -> None:
    # PostgreSQL only: SQLite has no row locks (its write transactions take turns).
    truncate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_sessions(engine)
    try:
        ids = _batch(sessions, 2)
        finishing, lost = (_claim(sessions, i) for i in ids)
        later = NOW + timedelta(minutes=5)  # both leases have lapsed by then
        with transaction(sessions) as worker:
            # The worker finishing the first job holds its row lock, as finish_many does.
            worker.execute(select(Job.id).where(Job.id == finishing.job_id).with_for_update())
            with transaction(sessions) as s:  # neither waits for the worker nor blocks it
                s.execute(text("SET LOCAL lock_timeout = '2s'"))
                assert queue.reconcile(s, later, queued_timeout=900) == 1
            run = JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {}), call=_call())
            statuses = finish_chunk(worker, [(finishing, run)], now=later)
            assert statuses == ["no_result"]
        with transaction(sessions) as s:
            assert s.get_one(Job, lost.job_id).status == "pending"
            assert s.get_one(Job, finishing.job_id).status == "no_result"
    finally:
        engine.dispose()


def test_providers_due_names_only_providers_with_a_due_pending_job(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as s:
        batch = create_batch(s, _entries(3), {P: {}, "juhe_car": {}})
        for job in s.scalars(select(Job).where(Job.batch_id == batch.id)):
            if job.provider == "juhe_car":  # all retrying later
                job.not_before = NOW + timedelta(hours=1)
    asked = [P, "juhe_car", "tianapi_plate"]
    with transaction(sessions) as s:
        assert queue.providers_due(s, NOW, asked) == [P]
        assert queue.providers_due(s, NOW + timedelta(hours=2), asked) == [P, "juhe_car"]
        queue.mark_queued(s, P, 10, NOW)  # nothing of P is pending any more
        assert queue.providers_due(s, NOW, asked) == []
