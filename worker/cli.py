"""The ``vrec`` command: parse arguments, call the service, render the answer.

Nothing here opens a session or builds SQL; heavy modules (Celery, the runtime) are
imported inside the commands that need them, so ``vrec --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from worker.errors import ConfigError
from worker.settings import get_settings

if TYPE_CHECKING:
    from models.db import Database

app = typer.Typer(help="vrec: vehicle-image recognition in batches.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)

ProviderOpt = Annotated[
    list[str],
    typer.Option("--provider", "-p", help="provider name; repeat for several"),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="job option KEY=VALUE, e.g. card_side=BACK"),
]


def _parse_options(pairs: list[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        options[key.strip()] = value.strip()
    return options


@app.command()
def run(
    paths: Annotated[list[str], typer.Argument(help="files, folders, CSV manifests or URLs")],
    provider: ProviderOpt,
    option: OptionOpt = None,
    label: Annotated[str | None, typer.Option(help="a name for the batch")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    concurrency: Annotated[int, typer.Option(help="embedded worker threads")] = 16,
    detach: Annotated[
        bool, typer.Option(help="register only; beat and workers process it (needs a broker)")
    ] = False,
) -> None:
    """Register images, process them, and print a summary when every job is done."""
    from worker.service.database import open_database
    from worker.service.submit import submit

    settings = get_settings()
    options = _parse_options(option)
    if detach and settings.broker_url is None:
        console.print("[red]error:[/red] --detach needs VREC_BROKER_URL (workers to do the work)")
        raise typer.Exit(2)
    try:
        with open_database(settings) as db:
            batch_id = submit(db, paths, provider, options, label)
            if detach:
                out = json.dumps({"batch_id": batch_id}) if as_json else str(batch_id)
                sys.stdout.write(out + "\n")
                return
            _follow_and_report(db, batch_id, as_json=as_json, concurrency=concurrency)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def wait(
    batch: Annotated[int, typer.Argument(help="batch id (from `vrec run --json` or status)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    concurrency: Annotated[int, typer.Option(help="embedded worker threads")] = 16,
) -> None:
    """Follow an existing batch to the end (e.g. after `vrec resume`), then summarise it."""
    from worker.service.database import open_database

    try:
        with open_database(get_settings()) as db:
            _follow_and_report(db, batch, as_json=as_json, concurrency=concurrency)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _follow_and_report(db: Database, batch_id: int, *, as_json: bool, concurrency: int) -> None:
    """Dispatch and watch a batch (embedded worker if there is no broker); print its summary.

    Exit code 3: a provider's circuit is open and its jobs stay pending.
    """
    from worker.render import print_summary, summary_json
    from worker.service.follow import run_batch

    with _progress(as_json) as update:
        result = run_batch(
            get_settings(), db, batch_id, concurrency=concurrency, on_progress=update
        )
    if as_json:
        sys.stdout.write(json.dumps(summary_json(result), ensure_ascii=False, indent=2) + "\n")
    else:
        print_summary(Console(), result)
    if result.blocked:
        raise typer.Exit(3)


class _progress:
    """A rich progress bar fed with status counts (silent with --json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task("", total=None)

    def __enter__(self) -> _progress:
        if not self.quiet:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:
            self.bar.stop()

    def __call__(self, counts: dict[str, int]) -> None:
        active = counts["pending"] + counts["queued"] + counts["running"]
        total = sum(counts.values())
        text = "  ".join(f"{k} {v}" for k, v in counts.items() if v)
        self.bar.update(self.task, total=total, completed=total - active, description=text)


@app.command()
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="task threads sharing one event loop")] = 32,
) -> None:
    """Run a Celery worker (threads pool); extra arguments pass through to Celery."""
    from worker.app import QUEUE
    from worker.app import app as celery

    # Threads, not prefork: tasks spend their time waiting on the vendor, and every thread
    # of the process shares one event loop, one aiohttp session and one limiter client
    # (worker/runtime.py). No -E: task events cost three broker messages per job; Flower
    # switches them on by itself when it is watching.
    argv = ["worker", "--pool=threads", f"--concurrency={concurrency}", "-Q", QUEUE]
    celery.worker_main([*argv, *ctx.args])


worker_settings = {"allow_extra_args": True, "ignore_unknown_options": True}
app.registered_commands[-1].context_settings = worker_settings


@app.command()
def beat(ctx: typer.Context) -> None:
    """Run Celery beat: dispatches due jobs every 2 s and reconciles lost ones every 30 s."""
    from worker.app import app as celery

    celery.start(["beat", *ctx.args])


app.registered_commands[-1].context_settings = worker_settings


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default head)."""
    from models import migrate

    migrate.upgrade(get_settings().database_url, revision)
    console.print(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (``base`` drops everything)."""
    from models import migrate

    migrate.downgrade(get_settings().database_url, revision)
    console.print(f"database at {revision}")


@app.command()
def simulator(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one)")] = 8900,
    host: Annotated[str, typer.Option(help="address to bind; loopback by default")] = "127.0.0.1",
) -> None:
    """Serve the five vendor simulators, accepting the credentials in VREC_<PROVIDER>__*."""
    from worker.simulator.server import serve

    serve(get_settings(), host=host, port=port)


@app.command()
def status() -> None:
    """Job counts by status and provider, and providers whose circuit is open."""
    from worker.render import print_status
    from worker.service.database import open_database
    from worker.service.status import queue_status

    with open_database(get_settings(), migrate_embedded=False) as db:
        print_status(Console(), queue_status(db))


@app.command()
def resume(
    provider: Annotated[str, typer.Argument(help="provider whose circuit to close")],
) -> None:
    """Close a provider's open circuit (after fixing its credentials): its jobs run again."""
    from worker.service.database import open_database
    from worker.service.status import resume as close_circuit

    with open_database(get_settings(), migrate_embedded=False) as db:
        closed = close_circuit(db, provider)
    console.print(f"{provider}: " + ("circuit closed" if closed else "circuit was not open"))


@app.command()
def demo(
    workdir: Annotated[str, typer.Option(help="where images and the database go")] = ".demo",
) -> None:
    """Run sample images through every provider against the local simulator."""
    from worker.demo import run_demo

    raise typer.Exit(run_demo(workdir))
