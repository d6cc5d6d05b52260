"""The ``vrec`` command: parse arguments, call the service, render the answer.

Nothing here opens a session or builds SQL; heavy modules (Celery, the runtime) are
imported inside the commands that need them, so ``vrec --help`` stays fast. Commands live
in :mod:`.running` (run, wait, reprocess), :mod:`.batches` (batches, status, retry,
cancel, export, prune, providers, resume), :mod:`.schedules` (``schedule add|list|show|
pause|resume|remove|run``), :mod:`.services` (worker, beat, simulator, db, demo) and
:mod:`.observe` (health, metrics, report); :mod:`.common` holds what they share.
"""

from __future__ import annotations

import os
from importlib.metadata import version as installed_version
from typing import Annotated

import typer
from rich.text import Text

from worker.cli import batches, observe, running, schedules, services
from worker.cli.common import DEBUG, App, err

app = App(help="vrec: vehicle-image recognition in batches.", no_args_is_help=True)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"vrec {installed_version('vrec')}")
        raise typer.Exit


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="show tracebacks (also VREC_DEBUG=1)")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """vrec: vehicle-image recognition in batches."""
    DEBUG.enabled = debug
    from worker.settings import unknown_variables

    for name, closest in unknown_variables(os.environ):
        hint = f"; did you mean {closest}?" if closest else ""
        err.print(Text(f"warning: {name} is not a vrec setting{hint}"), soft_wrap=True)


running.register(app)
batches.register(app)
schedules.register(app)
services.register(app)
observe.register(app)
