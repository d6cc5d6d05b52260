"""The configured database, opened for a command with its schema checked."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from models import migrate
from models.db import Database
from worker.config import Settings
from worker.errors import SchemaNotReady


@contextmanager
def open_database(settings: Settings, *, migrate_embedded: bool = True) -> Iterator[Database]:
    """The database of ``settings``, disposed of on the way out.

    The embedded SQLite default migrates itself (``migrate_embedded``); a shared database
    is migrated on purpose (``vrec db upgrade``), so one that is not at this vrec's head
    raises :class:`SchemaNotReady` naming the fix.
    """
    url = settings.database_url
    if migrate_embedded and url.startswith("sqlite"):
        migrate.upgrade(url)
    with Database(url) as db:
        check_schema(db)
        yield db


def check_schema(db: Database) -> None:
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
