"""The configured database, opened for a command with its schema checked.

The boundary where SQLAlchemy's connection errors become :class:`~worker.errors.Unreachable`
(one line naming the database, without its password, and what to check).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from models.db import Database
from models.queries import first_line
from worker.config import Settings
from worker.errors import SchemaNotReady, Unreachable


def shown_url(url: str) -> str:
    """A database URL as messages show it: never its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL that does not parse shows no more than its scheme
        return url.partition("://")[0] + "://..."


# What a database that does not answer (down, refusing, a file that can't be opened) raises.
CONNECTION_ERRORS = (OperationalError, InterfaceError)


def unreachable(url: str, exc: DBAPIError) -> Unreachable:
    return Unreachable(
        f"cannot reach the database {shown_url(url)}: {first_line(exc)} "
        "(is it running? check VREC_DATABASE_URL)"
    )


@contextmanager
def open_database(settings: Settings, *, migrate_embedded: bool = True) -> Iterator[Database]:
    """The database of ``settings``, disposed of on the way out.

    The embedded SQLite default migrates itself (``migrate_embedded``); a shared database
    is migrated on purpose (``vrec db upgrade``), so one that is not at this vrec's head
    raises :class:`SchemaNotReady` naming the fix. A database that does not answer is
    :class:`Unreachable`.
    """
    from models import migrate  # Alembic: ~7 MB a worker need not hold until a task opens one

    url = settings.database_url
    with Database(url) as db:
        try:
            if migrate_embedded and url.startswith("sqlite"):
                migrate.upgrade(url)
            check_schema(db)
        except CONNECTION_ERRORS as exc:
            raise unreachable(url, exc) from exc
        yield db


def check_schema(db: Database) -> None:
    from models import migrate

    with db.engine.connect() as conn:
        state = migrate.schema_state(conn)
    if state is migrate.SchemaState.MISSING:
        raise SchemaNotReady("the database has no vrec tables: run `vrec db upgrade`")
    if state is migrate.SchemaState.BEHIND:
        raise SchemaNotReady("the database schema is behind this vrec: run `vrec db upgrade`")
    if state is migrate.SchemaState.AHEAD:
        raise SchemaNotReady(
            "the database was migrated by a newer vrec than this one: upgrade vrec"
        )
