"""The store: one SQLAlchemy Core schema on SQLite (embedded default) and PostgreSQL."""

from tidings.store.database import Database, open_database

__all__ = ["Database", "open_database"]
