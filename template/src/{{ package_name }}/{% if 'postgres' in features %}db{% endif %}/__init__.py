"""PostgreSQL access: the asyncpg pool and its lifecycle, errors, schema migrations."""

from .errors import DatabaseUnavailableError, PoolExhaustedError
from .pool import Database, open_database
from .text import StoredText

__all__ = [
    "Database",
    "DatabaseUnavailableError",
    "PoolExhaustedError",
    "StoredText",
    "open_database",
]
