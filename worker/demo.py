"""``vrec demo``: sample images through every provider, against the local simulator only.

It makes up throwaway credentials, starts the simulator in this process on a free
loopback port with them, points every provider's base URL at it, and runs the real
``vrec run`` command in a child process on the embedded default (SQLite + in-process
Celery worker); then a daily schedule on a drop folder, run twice by hand (the second
run registers and bills nothing). Then it shows a few SQL queries a user could run on the
file it wrote, and writes batch 1 as an HTML report (``vrec report``), printing its path
last.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from worker.providers.registry import names
from worker.settings import settings_from_env
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.samples import vehicle_photo, write_demo_set
from worker.simulator.server import SimulatorThread

QUERIES = {
    "latest plate per file and plate vendor": (
        "SELECT source_uri, provider, plate_no, color, confidence, reused FROM v_latest_plate"
        " ORDER BY source_uri, provider LIMIT 12"
    ),
    "vehicle licences": "SELECT plate_no, vin, owner, side, source_uri FROM v_vehicle_licenses",
    "top car model per image": "SELECT source_uri, name, year, score, color FROM v_top_car_model",
    "failures by provider and code": "SELECT * FROM v_failures ORDER BY provider, jobs DESC",
    "calls per batch": "SELECT * FROM v_batch_calls",
    "schedule runs and what they billed": (
        "SELECT s.name, r.id AS run, r.outcome, r.files_new, r.files_skipped, r.items,"
        " COALESCE(SUM(c.billed_calls), 0) AS billed FROM schedule_runs r"
        " JOIN schedules s ON s.id = r.schedule_id"
        " LEFT JOIN v_batch_calls c ON c.batch_id = r.batch_id"
        " GROUP BY s.name, r.id, r.outcome, r.files_new, r.files_skipped, r.items ORDER BY r.id"
    ),
}


def run_demo(workdir: str = ".demo") -> int:
    console = Console()
    root = Path(workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    images = root / "images"
    what = write_demo_set(images)
    db = root / "vrec.db"

    env = {k: v for k, v in os.environ.items() if not k.startswith("VREC_")}
    env.update(made_up_credentials())
    env["VREC_DATABASE_URL"] = f"sqlite:///{db}"
    sim_settings = settings_from_env(env)
    with SimulatorThread(sim_settings) as sim:
        env.update(base_urls(sim_settings, sim.base_url))
        table = Table(title=f"sample images in {images}", title_justify="left")
        table.add_column("file")
        table.add_column("what it is")
        for name, description in what.items():
            table.add_row(name, description)
        console.print(table)
        providers = [arg for name in names() for arg in ("-p", name)]
        code = _vrec(console, env, "run", str(images), *providers, "--label", "demo")
        if code in (0, 3):
            # The same folder again, with one more copy of a photo: every answer is reused.
            shutil.copyfile(images / "car-1.jpg", images / "car-1-copy.jpg")
            console.print("\n[bold]Again, with a copy of car-1.jpg: nothing is billed twice[/bold]")
            code = _vrec(
                console, env, "run", str(images), "-p", "tianapi_plate", "--label", "again"
            )
        if code in (0, 3):
            export = root / "demo-batch.csv"
            code = _vrec(console, env, "export", "1", "--format", "csv", "-o", str(export))
            console.print(f"export of batch 1 (one row per file and provider): {export}")
        if code in (0, 3):
            code = _schedule(console, env, root / "drop")
        report = root / "report.html"
        if code in (0, 3):
            code = _vrec(console, env, "report", "1", "-o", str(report))
    if code not in (0, 3):
        console.print(f"[red]vrec exited with {code}[/red]")
        return code
    _show_queries(console, db)
    console.print(f"\n[bold]Batch 1 as a page (open it in a browser):[/bold] {report}")
    return 0


def _schedule(console: Console, env: dict[str, str], drop: Path) -> int:
    """A daily schedule on a drop folder, run twice by hand: the first run registers and
    bills what arrived, the second finds nothing new and registers and bills nothing."""
    drop.mkdir()
    for i in range(3):
        (drop / f"arrived-{i}.jpg").write_bytes(vehicle_photo(300 + i, (800, 600)))
    console.print(
        "\n[bold]A schedule on a drop folder, run twice: the second run finds nothing new,"
        " so it registers and bills nothing[/bold]"
    )
    daily = ("--cron", "0 2 * * *", "--timezone", "Asia/Shanghai")
    steps = [
        ("add", "daily-drop", "--source", str(drop), "-p", "tianapi_plate", *daily),
        ("run", "daily-drop"),
        ("run", "daily-drop"),
        ("show", "daily-drop"),
    ]
    for step in steps:
        code = _vrec(console, env, "schedule", *step)
        if code not in (0, 3):
            return code
    return 0


def _vrec(console: Console, env: dict[str, str], *args: str) -> int:
    """Show and run one ``vrec`` command in a child process; its exit code."""
    console.print(f"[bold]$ vrec {' '.join(args)}[/bold]")
    return subprocess.call([sys.executable, "-m", "worker", *args], env=env)


def _show_queries(console: Console, db: Path) -> None:
    console.print(f"\n[bold]The results are plain SQL in {db}. For example:[/bold]")
    with sqlite3.connect(db) as conn:
        for title, sql in QUERIES.items():
            cursor = conn.execute(sql)
            rows = cursor.fetchall()
            if not rows:
                continue
            table = Table(title=f'{title}\n  sqlite3 {db} "{sql}"', title_justify="left")
            for column in cursor.description:
                table.add_column(column[0])
            for row in rows[:10]:
                table.add_row(*("" if v is None else str(v) for v in row))
            console.print(table)
