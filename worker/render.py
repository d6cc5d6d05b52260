"""Rendering what the service answers, for people (rich) and for programs (JSON).

Imports neither Celery nor the runtime: printing a summary needs only the summary.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from worker.lifecycle import ACTIVE
from worker.service.status import QueueStatus, Summary

SUMMARY_ROWS = ("succeeded", "no_result", "invalid_image", "failed")


def _shown(counts: dict[str, int]) -> dict[str, int]:
    """The four summary outcomes always, other statuses only when some job has them."""
    return {k: v for k, v in counts.items() if v or k in SUMMARY_ROWS}


def summary_json(result: Summary) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "total": result.total,
        "counts": _shown(result.counts),
        "by_provider": {p: _shown(c) for p, c in result.by_provider.items()},
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
    rows: list[tuple[str, tuple[str, ...]]] = [(key, (key,)) for key in SUMMARY_ROWS]
    if not result.complete:
        rows.append(("[yellow]still pending[/yellow]", ACTIVE))
    for label, keys in rows:
        per = [str(sum(result.by_provider[p].get(k, 0) for k in keys)) for p in providers]
        table.add_row(label, *per, str(sum(result.counts.get(k, 0) for k in keys)))
    console.print(table)
    if result.errors:
        errors = Table(title="commonest errors", title_justify="left")
        for column in ("category", "code", "message", "jobs"):
            errors.add_column(column, justify="right" if column == "jobs" else "left")
        for e in result.errors:
            errors.add_row(e.category, e.code or "", e.message, str(e.count))
        console.print(errors)
    if result.invalid:
        files = Table(title="invalid files", title_justify="left")
        files.add_column("file")
        files.add_column("reason")
        for source, reason in result.invalid:
            files.add_row(source, reason)
        console.print(files)
    for state in result.blocked:
        console.print(
            f"[bold red]provider {state.provider} unavailable[/bold red]: "
            f"{state.error_message} [{state.error_code}]; its jobs stay pending "
            f"(`vrec status`; they run again once it is fixed)"
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
        console.print(
            f"[bold red]circuit open: {state.provider}[/bold red] since "
            f"{state.opened_at:%Y-%m-%d %H:%M:%S} UTC until "
            f"{state.circuit_open_until:%H:%M:%S}: {state.error_message} "
            f"[{state.error_code}]"
        )
