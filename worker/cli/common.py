"""What every ``vrec`` command shares: the app class that turns our errors into one line,
option types, the consoles, JSON output.

A :class:`~worker.errors.UsageError` (unknown batch, bad query, missing settings...) is
printed as one line naming the fix, and the command exits 2; no traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.text import Text

from worker.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

# Messages and progress go to stderr; what a program reads (JSON, ids, exports) to stdout.
err = Console(stderr=True)

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` (as plain text, control characters escaped) and exit
    ``code``."""
    from worker.render import plain

    err.print(Text.assemble(("error: ", "bold red"), plain(message)), soft_wrap=True)
    raise typer.Exit(code)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def debugging() -> bool:
    """``--debug`` or ``VREC_DEBUG=1``: show tracebacks instead of one line."""
    return DEBUG.enabled or os.environ.get("VREC_DEBUG", "") not in ("", "0", "false")


class _Debug:
    enabled = False


DEBUG = _Debug()


def fault_line(exc: BaseException) -> str:
    """One line for an error no boundary translated: its type and first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


class App(typer.Typer):
    """A Typer app whose commands print every fault as one line naming the fix, and exit
    with the code a cron job can read: 2 for usage and configuration errors (and any
    error nothing translated), 130 when interrupted. ``--debug`` shows tracebacks."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorate(fn: F) -> F:
            @functools.wraps(fn)
            def guarded(*a: Any, **kw: Any) -> Any:
                try:
                    return fn(*a, **kw)
                except (typer.Exit, typer.Abort, click.ClickException):
                    raise
                except UsageError as exc:
                    if debugging():
                        raise
                    fail(str(exc))
                except KeyboardInterrupt:
                    if debugging():
                        raise
                    err.print("interrupted", soft_wrap=True)
                    raise typer.Exit(EXIT_INTERRUPTED) from None
                except Exception as exc:
                    if debugging():
                        raise
                    fail(fault_line(exc) + " (run with --debug for the traceback)")

            register(guarded)
            return fn

        return decorate


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def local_time(value: datetime | None) -> datetime | None:
    """A date or time typed on the command line, read in this machine's time zone."""
    return None if value is None else value.astimezone()


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        options[key.strip()] = value.strip()
    return options


def split_list(values: list[str] | None) -> list[str]:
    """``--status failed,no_result --status invalid_image`` -> the three statuses."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


JsonOpt = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]
ProviderOpt = Annotated[
    list[str],
    typer.Option("--provider", "-p", help="provider name; repeat for several"),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="job option KEY=VALUE, e.g. card_side=BACK"),
]
LabelOpt = Annotated[str | None, typer.Option(help="a name for the batch")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="call the vendor even where an answer could be reused")
]
ConcurrencyOpt = Annotated[int, typer.Option(help="embedded worker threads")]
DetachOpt = Annotated[
    bool, typer.Option(help="register only; beat and workers process it (needs a broker)")
]
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
