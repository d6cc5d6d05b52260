"""Commands that run vrec's processes and tools: ``worker``, ``beat``, ``simulator``,
``db``, ``demo``."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

import click
import typer

from worker import logs
from worker.cli.common import App, err, fail
from worker.settings import get_settings

if TYPE_CHECKING:
    from celery import Celery

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: App) -> None:
    app.command(context_settings=PASS_THROUGH)(worker)
    app.command(context_settings=PASS_THROUGH)(beat)
    app.command()(simulator)
    app.command()(demo)
    db_app = App(help="Database schema (Alembic).", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("downgrade")(db_downgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")


Pool = Literal["threads", "prefork"]


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="task threads sharing one event loop")] = 32,
    pool: Annotated[
        Pool, typer.Option(help="threads (one event loop for all) or prefork (processes)")
    ] = "threads",
    queues: Annotated[
        str | None, typer.Option("-Q", "--queues", help="default: vrec,vrec.control")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve Prometheus /metrics on this port (default VREC_METRICS_PORT)"),
    ] = None,
    metrics_addr: Annotated[str, typer.Option(help="address /metrics binds")] = "0.0.0.0",  # noqa: S104
) -> None:
    """Run a Celery worker; extra arguments pass through to Celery.

    Its node name is vrec-PID@HOST (unique on a host) unless -n/--hostname is given.
    """
    settings = get_settings()
    logs.configure("WARNING", settings.log_format)  # until Celery's --loglevel is applied
    port = settings.metrics_port if metrics_port is None else metrics_port
    if port is not None and pool == "prefork":
        _multiprocess_metrics()  # before anything imports prometheus_client
    from worker.app import CONTROL_QUEUE, QUEUE
    from worker.app import app as celery

    # Threads by default, not prefork: tasks spend their time waiting on the vendor, and
    # every thread of the process shares one event loop, one aiohttp session and one
    # limiter client (worker/runtime.py). No -E: task events cost three broker messages per
    # job; Flower switches them on by itself when it is watching.
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}"]
    argv += ["-Q", queues or f"{QUEUE},{CONTROL_QUEUE}"]
    if not _names_node(ctx.args):
        argv += ["--hostname", node_name()]
    if port is not None:
        from worker import metrics

        try:
            bound = metrics.serve(port, metrics_addr)
        except OSError as exc:
            fail(f"cannot serve metrics on {metrics_addr}:{port}: {exc.strerror or exc}")
        # On stdout, with Celery's banner: stderr carries log records only (JSON ones too).
        typer.echo(f"metrics on http://{metrics_addr}:{bound}/metrics")
    _celery_worker(celery, [*argv[1:], *ctx.args])


def _celery_worker(celery: Celery, args: list[str]) -> None:
    """Celery's own ``worker`` command, run without its umbrella CLI (what ``worker_main``
    goes through): ``celery.bin.celery`` imports every subcommand, the amqp shell's
    prompt_toolkit among them, ~8 MB that each worker would hold for nothing."""
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker as command

    try:
        with contextlib.suppress(click.exceptions.Exit):  # the worker's own exit, as Celery's
            command.main(
                args=args,
                prog_name="vrec worker",
                obj=CLIContext(app=celery, no_color=None, workdir=None),
                standalone_mode=False,
            )
    except click.UsageError as exc:  # an option Celery's worker does not take
        fail(f"{exc.format_message()} (`celery worker --help` lists what passes through)")


def node_name() -> str:
    """``vrec-PID@HOST``: unique on its host, as Celery needs (``%h`` is Celery's host)."""
    return f"vrec-{os.getpid()}@%h"


def _names_node(args: list[str]) -> bool:
    return any(a in ("-n", "--hostname") or a.startswith(("--hostname=", "-n")) for a in args)


def _multiprocess_metrics() -> None:
    """prometheus-client's multiprocess mode for a prefork worker: each child writes its
    own files, the parent serves their sum. The mode is chosen when prometheus_client is
    first imported, so this runs first; a directory of our own, removed at exit."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before multiprocess mode was set")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="vrec-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


def beat(ctx: typer.Context) -> None:
    """Run Celery beat: dispatches due jobs every 2 s, reconciles lost ones every 30 s, and
    looks for schedules whose tick has come every VREC_SCHEDULE_CHECK_SECONDS (30)."""
    from worker.app import app as celery

    logs.configure("WARNING", get_settings().log_format)  # until Celery's --loglevel is applied
    celery.start(["beat", *ctx.args])


def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default head)."""
    from models import migrate

    _migrating(migrate.upgrade, revision)
    err.print(f"database at {revision}")


def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (``base`` drops everything)."""
    from models import migrate

    _migrating(migrate.downgrade, revision)
    err.print(f"database at {revision}")


def _migrating(step: Callable[[str, str], None], revision: str) -> None:
    from worker.service.database import CONNECTION_ERRORS, unreachable

    url = get_settings().database_url
    try:
        step(url, revision)
    except CONNECTION_ERRORS as exc:
        raise unreachable(url, exc) from exc


def db_current() -> None:
    """The revision the configured database is at, and whether that is this vrec's head."""
    from models import migrate
    from models.db import Database
    from worker.service.database import shown_url

    url = get_settings().database_url
    with Database(url) as db, db.engine.connect() as conn:
        current = migrate.current_revision(conn)
        state = migrate.schema_state(conn)
    head = migrate.head_revision()
    typer.echo(
        f"{shown_url(url)}: at {current or 'no revision'} (this vrec's head: {head}, {state})"
    )


def simulator(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one)")] = 8900,
    host: Annotated[str, typer.Option(help="address to bind; loopback by default")] = "127.0.0.1",
) -> None:
    """Serve the five vendor simulators, accepting the credentials in VREC_<PROVIDER>__*."""
    from worker.simulator.server import serve

    serve(get_settings(), host=host, port=port)


def demo(
    workdir: Annotated[str, typer.Option(help="where images and the database go")] = ".demo",
) -> None:
    """Run sample images through every provider against the local simulator."""
    from worker.demo import run_demo

    raise typer.Exit(run_demo(workdir))
