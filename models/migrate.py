"""Run Alembic from code (``vrec db upgrade``) with the migrations shipped in the package."""

from __future__ import annotations

import importlib.resources
from enum import StrEnum

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

# The revisions are Alembic's to run (it executes migrations/env.py, which imports models),
# so they are located as the package's files, not imported from here.
SCRIPT_LOCATION = str(importlib.resources.files("migrations"))


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for ``url`` (default: the settings' database) or an open connection."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


class SchemaState(StrEnum):
    MISSING = "missing"  # no vrec tables at all
    BEHIND = "behind"  # migrated, but not to the latest revision
    CURRENT = "current"
    AHEAD = "ahead"  # a revision this vrec doesn't know (a newer vrec migrated it)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def schema_state(connection: Connection) -> SchemaState:
    """Where the database's schema stands against this vrec's migrations."""
    current = current_revision(connection)
    if current is None:
        has_jobs = inspect(connection).has_table("jobs")
        return SchemaState.BEHIND if has_jobs else SchemaState.MISSING
    if current == head_revision():
        return SchemaState.CURRENT
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    return SchemaState.BEHIND if current in known else SchemaState.AHEAD
