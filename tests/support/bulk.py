"""A PostgreSQL database filled with many finished jobs in seconds (``generate_series``),
for the query-plan tests and ``bench/scale.py``.

The shape is what a long-used vrec holds: ``history`` finished jobs in batches of 1,000
(one image, item, attempt and answer each; plate providers' answers with one plate
reading, the licence provider's with one licence page), and one batch being followed of
:data:`FOLLOWED` jobs that are pending, queued or running. Only the history grows with
``history``, so a query that costs the same at 10k and 1M is one that does not read it.
"""

from __future__ import annotations

from sqlalchemy import Connection

FOLLOWED = 1_000  # jobs of the followed batch: 600 pending, 200 queued, 200 running
HISTORY_BATCH = 1_000
# Five providers, as many as vrec has; the followed batch's jobs are all of the first.
PROVIDERS = ("tianapi_plate", "aliyun_plate", "juhe_plate", "tencent_vehicle_license", "juhe_car")
T0 = "2026-11-01 08:00:00+00"


def plate_of(i: int) -> str:
    """The plate read in history image ``i``."""
    return f"粤B{i:06d}"


def vin_of(i: int) -> str:
    """The VIN read in history image ``i``."""
    return f"LSV{i:014d}"


def _provider(i: str) -> str:
    cases = " ".join(f"WHEN {n} THEN '{p}'" for n, p in enumerate(PROVIDERS))
    return f"(CASE mod({i}, {len(PROVIDERS)}) {cases} END)"


def fill(conn: Connection, history: int) -> int:
    """Add ``history`` finished jobs and the followed batch to an empty vrec database; the
    followed batch's id. Ids are assigned here (sequences moved past them) and the
    tables analysed, as autovacuum would have done by then."""
    batches = max(1, -(-history // HISTORY_BATCH))
    followed = batches + 1
    total = history + FOLLOWED
    sql = [
        f"""INSERT INTO batches (id, label, sources, created_at)
            SELECT b, 'batch ' || b, '[]', TIMESTAMPTZ '{T0}'
            FROM generate_series(1, {followed}) b""",
        f"""INSERT INTO images (id, sha256, bytes, width, height, format, created_at)
            SELECT i, md5(i::text) || md5('x' || i), 100000, 1600, 1200, 'JPEG',
                   TIMESTAMPTZ '{T0}'
            FROM generate_series(1, {total}) i""",
        f"""INSERT INTO items (id, batch_id, image_id, uri, created_at)
            SELECT i, CASE WHEN i <= {history} THEN 1 + (i - 1) / {HISTORY_BATCH}
                           ELSE {followed} END,
                   i, '/data/cam/' || i || '.jpg', TIMESTAMPTZ '{T0}'
            FROM generate_series(1, {total}) i""",
        f"""INSERT INTO jobs (id, batch_id, image_id, provider, options, options_key, status,
                              attempts, retries, lease_owner, lease_expires_at, queued_at,
                              created_at, updated_at, finished_at)
            SELECT i, CASE WHEN i <= {history} THEN 1 + (i - 1) / {HISTORY_BATCH}
                           ELSE {followed} END,
                   i, CASE WHEN i <= {history} THEN {_provider("i")} ELSE '{PROVIDERS[0]}' END,
                   '{{}}', '',
                   CASE WHEN i <= {history} THEN 'succeeded'
                        WHEN i <= {history} + 600 THEN 'pending'
                        WHEN i <= {history} + 800 THEN 'queued'
                        ELSE 'running' END,
                   CASE WHEN i <= {history} THEN 1 ELSE 0 END, 0,
                   CASE WHEN i > {history} + 800 THEN 'bench-worker' END,
                   CASE WHEN i > {history} + 800 THEN TIMESTAMPTZ '{T0}' + INTERVAL '1 day' END,
                   CASE WHEN i > {history} + 600 THEN TIMESTAMPTZ '{T0}' END,
                   TIMESTAMPTZ '{T0}', TIMESTAMPTZ '{T0}',
                   CASE WHEN i <= {history} THEN TIMESTAMPTZ '{T0}' + i * INTERVAL '1 ms' END
            FROM generate_series(1, {total}) i""",
        f"""INSERT INTO attempts (id, job_id, number, provider, started_at, duration_ms,
                                  http_status, outcome, billed, worker)
            SELECT i, i, 1, {_provider("i")}, TIMESTAMPTZ '{T0}', 300, 200, 'succeeded', true,
                   'bench-worker'
            FROM generate_series(1, {history}) i""",
        f"""INSERT INTO results (id, job_id, attempt, image_id, provider, outcome, raw,
                                 warnings, created_at)
            SELECT i, i, 1, i, {_provider("i")}, 'succeeded', '{{}}', '[]',
                   TIMESTAMPTZ '{T0}' + i * INTERVAL '1 ms'
            FROM generate_series(1, {history}) i""",
        f"""INSERT INTO plate_readings (result_id, job_id, image_id, provider, position,
                                       plate_no, color, confidence)
            SELECT i, i, i, {_provider("i")}, 0, '粤B' || lpad(i::text, 6, '0'), 'blue', 0.9
            FROM generate_series(1, {history}) i
            WHERE mod(i, {len(PROVIDERS)}) IN (0, 1, 2)""",
        f"""INSERT INTO vehicle_licenses (result_id, job_id, image_id, provider, side,
                                         plate_no, vin, owner, warn_codes, warn_msgs)
            SELECT i, i, i, '{PROVIDERS[3]}', 'FRONT', '粤B' || lpad(i::text, 6, '0'),
                   'LSV' || lpad(i::text, 14, '0'), 'owner ' || i, '[]', '[]'
            FROM generate_series(1, {history}) i
            WHERE mod(i, {len(PROVIDERS)}) = 3""",
    ]
    for statement in sql:
        conn.exec_driver_sql(statement)
    for table in ("batches", "images", "items", "jobs", "attempts", "results"):
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
        )
    conn.exec_driver_sql("ANALYZE")
    return followed
