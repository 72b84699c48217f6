"""Alembic environment: the engine comes from :func:`api.db.alembic_config`, the metadata from the models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from api.models import Base

engine = context.config.attributes["engine"]
assert isinstance(engine, Engine), "run migrations through api.db.upgrade()"

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
