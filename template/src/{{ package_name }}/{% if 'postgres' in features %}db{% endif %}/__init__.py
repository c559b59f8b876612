"""PostgreSQL access: the asyncpg pool and its lifecycle."""

from .pool import Database, DatabaseUnavailableError, open_database

__all__ = ["Database", "DatabaseUnavailableError", "open_database"]
