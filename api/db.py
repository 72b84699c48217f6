"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL/PostGIS.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so readers never block the writer. The
schema is created and upgraded by Alembic only (:func:`upgrade`); the Alembic configuration is built here, so
no ``alembic.ini`` is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Database:
    """The service's database: a session factory for reads and one for writes.

    On SQLite they use two engines on the same file: reads begin deferred (many at once, in WAL), writes begin
    ``IMMEDIATE`` so that concurrent writers queue on the lock instead of failing. On PostgreSQL both share one
    engine.
    """

    url: str
    engine: Engine
    write_engine: Engine
    read: sessionmaker[Session]
    write: sessionmaker[Session]

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        self.write_engine.dispose()


def open_database(url: str) -> Database:
    """Connect to ``url`` (SQLite file or PostgreSQL); the schema is not touched (see :func:`upgrade`)."""
    if make_url(url).get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        return Database(url, engine, engine, _factory(engine), _factory(engine))
    reader, writer = make_sqlite_engine(url, immediate=False), make_sqlite_engine(url, immediate=True)
    return Database(url, reader, writer, _factory(reader), _factory(writer))


def make_sqlite_engine(url: str, *, immediate: bool) -> Engine:
    """A SQLite engine with WAL, foreign keys and a 30 s busy timeout; ``immediate`` for writers."""
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _begin_immediate if immediate else _begin_deferred)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions itself; take that over so that BEGIN IMMEDIATE can be used.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def _factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    """The Alembic configuration of the service, bound to ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(database.write_engine), revision)
