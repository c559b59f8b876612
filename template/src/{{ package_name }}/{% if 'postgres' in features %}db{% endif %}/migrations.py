"""Schema migrations: ordered SQL files applied once each and recorded.

Files live in ``sql/`` beside this module, named ``NNNN_description.sql``, and
run in the order of their number. ``schema_migrations`` records each applied
version with a checksum of its file. A run takes a PostgreSQL advisory lock and
applies everything pending in one transaction, so several processes or hosts
migrating at once apply each file exactly once, and a failing file leaves the
schema as it was. A file edited after it was applied is refused: write a new
migration instead. (A statement that cannot run inside a transaction, such as
``CREATE INDEX CONCURRENTLY``, does not belong in these files.)

Run ``python -m <package> migrate``; it is also what the tests run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

from ..settings import Settings

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_LOCK_KEY = "schema_migrations"
"""Hashed into the advisory lock number every migrating process agrees on."""

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: an edit after it was applied is detected."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_directory() -> Traversable:
    """The ``sql/`` folder shipped inside the package."""
    return files(__package__ or __name__.rpartition(".")[0]) / "sql"


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Every ``NNNN_name.sql`` file, in version order; other names are an error."""
    directory = directory if directory is not None else default_directory()
    migrations: dict[str, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files are named NNNN_name.sql")
        version = match["version"]
        if version in migrations:
            raise MigrationError(f"two migration files have version {version}")
        migrations[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [migrations[version] for version in sorted(migrations)]


async def apply_migrations(
    connection: asyncpg.Connection[asyncpg.Record]
    | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    migrations: list[Migration] | None = None,
) -> list[Migration]:
    """Apply the pending migrations in one transaction; return those applied now."""
    migrations = migrations if migrations is not None else load_migrations()
    applied_now: list[Migration] = []
    async with connection.transaction():
        # Held until the transaction ends: concurrent runs queue here.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _LOCK_KEY)
        await connection.execute(_CREATE_TABLE)
        rows = await connection.fetch("SELECT version, checksum FROM schema_migrations")
        recorded = {row["version"]: row["checksum"] for row in rows}
        for migration in migrations:
            checksum = recorded.get(migration.version)
            if checksum is not None:
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name}.sql changed after it "
                        "was applied; add a new migration instead of editing it"
                    )
                continue
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration)
            logger.info("migration %s_%s applied", migration.version, migration.name)
    return applied_now


async def migrate(settings: Settings) -> list[Migration]:
    """Connect with the service's settings and apply the pending migrations."""
    connection: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        settings.database_url,
        timeout=settings.db_connect_timeout,
        command_timeout=settings.db_command_timeout,
        statement_cache_size=settings.db_statement_cache_size,
    )
    try:
        return await apply_migrations(connection)
    finally:
        await connection.close()
