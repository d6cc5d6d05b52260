"""Rendering what the service answers, for people (rich) and for programs (JSON).

Imports neither Celery nor the runtime: printing a summary needs only the summary. Text
that comes from users or vendors (paths, messages) is shown as plain text, never as rich
markup, with control characters made visible, so a file name cannot restyle or break the
output or send escape sequences to the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from models.operations import Pruned
from worker.lifecycle import ACTIVE
from worker.service.batches import BatchDetail, BatchOverview
from worker.service.providers import ProviderSetup
from worker.service.status import Progress, QueueStatus, Summary

SUMMARY_ROWS = ("succeeded", "no_result", "invalid_image", "failed")


def plain(value: object) -> Text:
    """``value`` as literal text: no markup, control characters shown as escapes."""
    text = "" if value is None else str(value)
    if not text.isprintable():  # C0/C1 controls, bidi overrides, line separators...
        text = "".join(
            ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text
        )
    return Text(text)


def when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; empty for None."""
    if seconds is None:
        return ""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _shown(counts: dict[str, int]) -> dict[str, int]:
    """The four summary outcomes always, other statuses only when some job has them."""
    return {k: v for k, v in counts.items() if v or k in SUMMARY_ROWS}


def summary_json(result: Summary) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "paused": result.paused,
        "total": result.total,
        "counts": _shown(result.counts),
        "reused": sum(result.reused.values()),
        "by_provider": {
            p: {**_shown(c), "reused": result.reused.get(p, 0)}
            for p, c in result.by_provider.items()
        },
        "seconds": round(result.seconds, 2),
        "errors": [
            {"category": e.category, "code": e.code, "message": e.message, "count": e.count}
            for e in result.errors
        ],
        "invalid_files": [{"source": s, "reason": r} for s, r in result.invalid],
        "providers_unavailable": [
            {"provider": s.provider, "code": s.error_code, "message": s.error_message}
            for s in result.blocked
        ],
    }


def print_summary(console: Console, result: Summary) -> None:
    table = Table(title=f"batch {result.batch_id}: {result.total} jobs in {result.seconds:.1f}s")
    table.add_column("outcome")
    providers = list(result.by_provider) if len(result.by_provider) > 1 else []
    for provider in providers:
        table.add_column(provider, justify="right")
    table.add_column("jobs", justify="right")
    shown = [*SUMMARY_ROWS, *(k for k, v in result.counts.items() if v and k == "cancelled")]
    rows: list[tuple[str, tuple[str, ...]]] = [(key, (key,)) for key in shown]
    if not result.complete:
        rows.append(("[yellow]still pending[/yellow]", ACTIVE))
    for label, keys in rows:
        per = [str(sum(result.by_provider[p].get(k, 0) for k in keys)) for p in providers]
        table.add_row(label, *per, str(sum(result.counts.get(k, 0) for k in keys)))
    if any(result.reused.values()):
        per = [str(result.reused.get(p, 0)) for p in providers]
        table.add_row("[dim]of which reused[/dim]", *per, str(sum(result.reused.values())))
    console.print(table)
    if result.errors:
        errors = Table(title="commonest errors", title_justify="left")
        for column in ("category", "code", "message"):
            errors.add_column(column, overflow="fold")
        errors.add_column("jobs", justify="right")
        for e in result.errors:
            errors.add_row(e.category, plain(e.code), plain(e.message), str(e.count))
        console.print(errors)
    if result.invalid:
        print_invalid(console, result.invalid)
    for state in result.blocked:
        line = Text.assemble(
            (f"provider {state.provider} unavailable", "bold red"),
            ": ",
            plain(f"{state.error_message} [{state.error_code}]"),
            "; its jobs stay pending (`vrec status`; they run again once it is fixed)",
        )
        console.print(line)


def print_invalid(console: Console, invalid: Sequence[tuple[str, str]]) -> None:
    """Each invalid file's path on a line of its own and its reason indented below, both
    whole however long (the terminal wraps them; a table column would cut or fold the
    paths they hold)."""
    console.print(Text("invalid files", style="italic"))
    for source, reason in invalid:
        console.print(plain(source), soft_wrap=True)
        console.print(Text.assemble("    ", plain(reason)), soft_wrap=True)


def _circuit_line(state: Any) -> Text:
    return Text.assemble(
        (f"circuit open: {state.provider}", "bold red"),
        f" since {when(state.opened_at)} UTC until {state.circuit_open_until:%H:%M:%S}: ",
        plain(f"{state.error_message} [{state.error_code}]"),
    )


def print_status(console: Console, status: QueueStatus) -> None:
    table = Table(title="jobs by provider and status")
    for column in ("provider", "status", "jobs"):
        table.add_column(column)
    for provider, counts in status.by_provider.items():
        for name, n in counts.items():
            if n:
                table.add_row(provider, name, str(n))
    console.print(table)
    for state in status.open_circuits:
        console.print(_circuit_line(state))


def status_json(status: QueueStatus) -> dict[str, Any]:
    return {
        "by_provider": {
            p: {k: v for k, v in c.items() if v} for p, c in status.by_provider.items()
        },
        "open_circuits": [_circuit_json(s) for s in status.open_circuits],
    }


def _circuit_json(state: Any) -> dict[str, Any]:
    return {
        "provider": state.provider,
        "opened_at": state.opened_at.isoformat() if state.opened_at else None,
        "open_until": state.circuit_open_until.isoformat() if state.circuit_open_until else None,
        "code": state.error_code,
        "message": state.error_message,
    }


def batches_json(found: list[BatchOverview]) -> list[dict[str, Any]]:
    return [
        {
            "batch_id": b.batch_id,
            "label": b.label,
            "created_at": b.created_at.isoformat(),
            "providers": list(b.by_provider),
            "counts": {k: v for k, v in b.counts.items() if v},
            "calls": b.total_calls.calls,
            "billed_calls": b.total_calls.billed,
            "reused": b.total_calls.reused,
            "state": "active" if b.active else "done",
        }
        for b in found
    ]


def print_batches(console: Console, found: list[BatchOverview]) -> None:
    if not found:
        console.print("no batches")
        return
    table = Table(title="batches, newest first")
    for column in ("id", "label", "created (UTC)", "providers", "jobs by status"):
        table.add_column(column, overflow="fold")
    for column in ("calls", "billed", "reused", "state"):
        table.add_column(column, justify="right")
    for b in found:
        counts = "  ".join(f"{k} {v}" for k, v in b.counts.items() if v)
        calls = b.total_calls
        table.add_row(
            str(b.batch_id),
            plain(b.label),
            when(b.created_at),
            ", ".join(b.by_provider),
            counts,
            str(calls.calls),
            str(calls.billed),
            str(calls.reused),
            "active" if b.active else "done",
        )
    console.print(table)


def batch_detail_json(detail: BatchDetail) -> dict[str, Any]:
    return {
        "batch_id": detail.batch_id,
        "label": detail.label,
        "created_at": detail.created_at.isoformat(),
        "eta_seconds": detail.eta_seconds,
        "providers": {
            p.provider: {
                "counts": {k: v for k, v in p.counts.items() if v},
                "done": p.done,
                "remaining": p.remaining,
                "rate_per_second": round(p.rate, 3),
                "configured_rate": p.configured_rate,
                "eta_seconds": p.eta_seconds,
                "calls": p.calls.calls,
                "billed_calls": p.calls.billed,
                "throttled_calls": p.calls.throttled,
                "reused": p.calls.reused,
                "circuit": _circuit_json(p.circuit) if p.circuit else None,
            }
            for p in detail.providers
        },
        "errors": [
            {
                "provider": e.provider,
                "category": e.category,
                "code": e.code,
                "message": e.message,
                "jobs": e.count,
            }
            for e in detail.errors
        ],
    }


def print_batch_detail(console: Console, detail: BatchDetail) -> None:
    title = f"batch {detail.batch_id}" + (f" ({detail.label})" if detail.label else "")
    title += f", created {when(detail.created_at)} UTC"
    if detail.eta_seconds is not None:
        title += f", about {duration(detail.eta_seconds)} to go"
    table = Table(title=plain(title))
    for column in ("provider", "done", "remaining", "jobs/s", "ETA", "calls", "billed", "reused"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    table.add_column("jobs by status")
    for p in detail.providers:
        table.add_row(
            p.provider,
            str(p.done),
            str(p.remaining),
            f"{p.rate:.2f}",
            duration(p.eta_seconds),
            str(p.calls.calls),
            str(p.calls.billed),
            str(p.calls.reused),
            "  ".join(f"{k} {v}" for k, v in p.counts.items() if v),
        )
    console.print(table)
    if detail.errors:
        errors = Table(title="errors by vendor code", title_justify="left")
        for column in ("provider", "category", "code", "jobs", "message"):
            errors.add_column(column, overflow="fold")
        for e in detail.errors:
            errors.add_row(e.provider, e.category, plain(e.code), str(e.count), plain(e.message))
        console.print(errors)
    for p in detail.providers:
        if p.circuit is not None:
            console.print(_circuit_line(p.circuit))


def providers_json(setups: list[ProviderSetup]) -> list[dict[str, Any]]:
    return [
        {
            "provider": s.name,
            "rate": s.rate,
            "base_url": s.base_url,
            "credentials": s.credentials,
            "limits": {
                "formats": sorted(s.limits.formats),
                "max_base64_bytes": s.limits.max_b64_bytes,
                "min_side": s.limits.min_side,
                "max_side": s.limits.max_side,
            },
            "circuit": _circuit_json(s.circuit) if s.circuit else None,
        }
        for s in setups
    ]


def print_providers(console: Console, setups: list[ProviderSetup]) -> None:
    table = Table(title="providers")
    for column in ("provider", "rate/s", "formats", "max base64", "sides", "credentials"):
        table.add_column(column)
    table.add_column("circuit")
    table.add_column("base URL", overflow="fold")
    for s in setups:
        creds = ", ".join(f"{k} {'set' if v else 'missing'}" for k, v in s.credentials.items())
        sides = f"{s.limits.min_side}-{s.limits.max_side or '…'} px"
        table.add_row(
            s.name,
            f"{s.rate:g}",
            "/".join(sorted(s.limits.formats)),
            f"{s.limits.max_b64_bytes:,}",
            sides,
            creds,
            "[red]open[/red]" if s.circuit else "closed",
            plain(s.base_url),
        )
    console.print(table)


def pruned_json(pruned: Pruned, *, dry_run: bool) -> dict[str, Any]:
    return {"dry_run": dry_run, **pruned.__dict__}


def pruned_line(pruned: Pruned, *, dry_run: bool) -> str:
    what = (
        f"{pruned.batches} batches, {pruned.items} files, {pruned.jobs} jobs, "
        f"{pruned.attempts} attempts, {pruned.results} results and {pruned.images} images"
    )
    return ("would remove " if dry_run else "removed ") + what


PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


class ProgressDisplay:
    """Progress of a followed batch on stderr: in a terminal, a bar per provider with
    done/total, jobs/s, ETA and elapsed; elsewhere (cron, CI, a pipe) a plain line every
    PLAIN_EVERY seconds. Silent when ``quiet`` (``--json``). Notices (warnings, pauses)
    are printed as lines either way."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.bar = RichProgress(
            TextColumn("{task.fields[provider]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}
        self.last_line = -PLAIN_EVERY

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.bar.stop()

    def __call__(self, progress: Progress) -> None:
        if self.quiet:
            return
        if self.live:
            for name, p in progress.providers.items():
                if name not in self.tasks:
                    self.tasks[name] = self.bar.add_task(
                        "", total=p.total, provider=name, rate="", eta=""
                    )
                eta = f"ETA {duration(p.eta_seconds)}" if p.eta_seconds is not None else ""
                self.bar.update(
                    self.tasks[name],
                    completed=p.done,
                    total=p.total,
                    rate=f"{p.rate:.1f}/s",
                    eta=eta,
                )
            return
        if progress.elapsed - self.last_line >= PLAIN_EVERY:
            self.last_line = progress.elapsed
            self.console.print(progress_line(progress), soft_wrap=True, highlight=False)

    def notice(self, line: str) -> None:
        if self.live:
            self.bar.console.print(Text(line), soft_wrap=True)
        else:
            self.console.print(Text(line), soft_wrap=True)


def progress_line(progress: Progress) -> str:
    """``batch 7: tianapi_plate 120/500 3.1/s ETA 2m03s; ... (elapsed 40s)``."""
    parts = []
    for name, p in progress.providers.items():
        eta = f" ETA {duration(p.eta_seconds)}" if p.eta_seconds is not None else ""
        parts.append(f"{name} {p.done}/{p.total} {p.rate:.1f}/s{eta}")
    return (
        f"batch {progress.batch_id}: "
        + "; ".join(parts)
        + f" (elapsed {duration(progress.elapsed)})"
    )


class Check(Protocol):
    """A health check's answer (:class:`worker.service.health.Check`, which needs Celery)."""

    @property
    def name(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def detail(self) -> str: ...


def health_lines(checks: Sequence[Check]) -> list[Text]:
    """One line per check: its name, ``ok`` or ``FAIL``, and what it found."""
    width = max((len(c.name) for c in checks), default=0)
    return [
        Text.assemble(
            f"{c.name:<{width}}  ",
            ("ok  " if c.ok else "FAIL", "green" if c.ok else "bold red"),
            "  ",
            plain(c.detail),
        )
        for c in checks
    ]


def health_json(checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "ok": all(c.ok for c in checks),
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
