"""asyncpg connection pool: opened in the lifespan, created lazily when PostgreSQL is down.

If PostgreSQL does not accept connections at startup the service still starts:
``/healthz`` answers, ``/readyz`` reports ``postgres`` as failing, and the pool
is created on the next use (at most one attempt per second, so a burst of
requests during an outage does not become a burst of connection attempts).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg
from asyncpg.pool import Pool, PoolConnectionProxy

from ..health import ReadinessChecks
from ..settings import Settings
from .errors import DatabaseUnavailableError, PoolExhaustedError

logger = logging.getLogger(__name__)

_RETRY_INTERVAL = 1.0
"""Seconds between two attempts to create the pool while PostgreSQL is down."""


IsolationLevel = Literal["read_committed", "read_uncommitted", "serializable", "repeatable_read"]

_CONNECTION_LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)
"""Errors that mean the server went away or cannot take this connection now."""


class Database:
    """Owns the asyncpg pool: creates it (now or lazily), checks it, closes it."""

    def __init__(self, settings: Settings) -> None:
        """Prepare the pool settings; nothing connects until ``start`` or first use."""
        self._settings = settings
        self._pool: Pool[asyncpg.Record] | None = None
        # One creation attempt at a time; concurrent callers wait for its outcome.
        self._lock = asyncio.Lock()
        self._last_attempt = -math.inf
        self._last_error: Exception | None = None
        self._closed = False

    async def start(self) -> None:
        """Try to open the pool; an unreachable server is logged, not fatal."""
        try:
            await self.pool()
        except DatabaseUnavailableError as exc:
            logger.warning("postgres unavailable at startup, will retry on use: %s", exc)

    async def pool(self) -> Pool[asyncpg.Record]:
        """The pool, created on first use if startup could not create it."""
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is not None:
                return self._pool
            if self._closed:
                raise DatabaseUnavailableError("the database has been closed")
            waited = time.monotonic() - self._last_attempt
            if self._last_error is not None and waited < _RETRY_INTERVAL:
                raise DatabaseUnavailableError(
                    f"cannot connect to PostgreSQL: {_describe(self._last_error)}"
                ) from self._last_error
            self._last_attempt = time.monotonic()
            try:
                pool = await self._create_pool()
            except Exception as exc:
                self._last_error = exc
                raise DatabaseUnavailableError(
                    f"cannot connect to PostgreSQL: {_describe(exc)}"
                ) from exc
            if self._closed:
                # Shutdown began while this pool was being created.
                pool.terminate()
                raise DatabaseUnavailableError("the database has been closed")
            self._pool, self._last_error = pool, None
            logger.info(
                "postgres pool open",
                extra={"min_size": pool.get_min_size(), "max_size": pool.get_max_size()},
            )
            return pool

    async def _create_pool(self) -> Pool[asyncpg.Record]:
        settings = self._settings
        return await asyncpg.create_pool(
            settings.database_url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            max_inactive_connection_lifetime=settings.db_max_inactive_connection_lifetime,
            # asyncpg waits forever for a query by default; a stuck query must fail.
            command_timeout=settings.db_command_timeout,
            statement_cache_size=settings.db_statement_cache_size,
            timeout=settings.db_connect_timeout,
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """Borrow a connection, waiting at most ``db_acquire_timeout`` for a free one.

        Raises ``PoolExhaustedError`` when none was free in time (the request
        gets a 503 instead of queueing forever), and ``DatabaseUnavailableError``
        when PostgreSQL is unreachable or a query outlives ``db_command_timeout``.
        """
        pool = await self.pool()
        timeout = self._settings.db_acquire_timeout
        try:
            connection = await pool.acquire(timeout=timeout)
        except TimeoutError as exc:
            raise PoolExhaustedError(f"no pooled connection was free within {timeout:g} s") from exc
        except _CONNECTION_LOST as exc:
            raise DatabaseUnavailableError(
                f"cannot connect to PostgreSQL: {_describe(exc)}"
            ) from exc
        except asyncpg.InterfaceError as exc:
            # The pool is closing or closed: shutdown began after ``self.pool()``.
            raise DatabaseUnavailableError(f"the pool is closing: {_describe(exc)}") from exc
        try:
            yield connection
        except TimeoutError as exc:
            raise DatabaseUnavailableError(
                f"a query ran longer than {self._settings.db_command_timeout:g} s"
            ) from exc
        except _CONNECTION_LOST as exc:
            raise DatabaseUnavailableError(
                f"lost the PostgreSQL connection: {_describe(exc)}"
            ) from exc
        finally:
            await self._release(pool, connection)

    async def _release(
        self, pool: Pool[asyncpg.Record], connection: PoolConnectionProxy[asyncpg.Record]
    ) -> None:
        # Release resets the connection (a round trip, bounded by the acquire
        # timeout). On a hung or broken network that fails, and asyncpg then
        # terminates the connection; the request's outcome is already decided,
        # so the failure is logged, never raised (it used to escape as a 500).
        try:
            await pool.release(connection)
        except (TimeoutError, *_CONNECTION_LOST, asyncpg.InterfaceError) as exc:
            logger.warning("postgres connection dropped on release: %s", _describe(exc))

    @asynccontextmanager
    async def transaction(
        self, *, isolation: IsolationLevel | None = None, readonly: bool = False
    ) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """Borrow a connection inside a transaction: committed on exit, rolled back on error."""
        async with (
            self.connection() as connection,
            connection.transaction(isolation=isolation, readonly=readonly),
        ):
            yield connection

    async def check(self) -> None:
        """Readiness: PostgreSQL answers ``SELECT 1`` through the pool."""
        pool = await self.pool()
        await pool.fetchval("SELECT 1", timeout=self._settings.readiness_timeout)

    async def close(self) -> None:
        """Close the pool gracefully, terminating it if that takes too long."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # A graceful close waits for every borrowed connection to come back,
            # which a stuck query could make last forever.
            async with asyncio.timeout(self._settings.db_close_timeout):
                await pool.close()
        except TimeoutError:
            logger.warning(
                "postgres pool did not close within %g s, terminating its connections",
                self._settings.db_close_timeout,
            )
            pool.terminate()
        logger.info("postgres pool closed")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def open_database(settings: Settings, readiness: ReadinessChecks) -> AsyncIterator[Database]:
    """Yield a started ``Database`` checked by ``/readyz`` as ``postgres``; close it on exit."""
    database = Database(settings)
    await database.start()
    readiness.register("postgres", database.check)
    try:
        yield database
    finally:
        readiness.unregister("postgres")
        await database.close()
