"""Flags carry what the vision pipeline found: micro-grid, detector class, the rule that fired, severity,
sightings, first and last seen, the evidence crop and full frame (paths under the data folder), the position
error, and the GB/T 30428.2 category code in ``category``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import api.geometry

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("microgrid_code", sa.String(length=17), nullable=True),
        sa.Column("class_name", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=True),
        sa.Column("sightings", sa.Integer(), nullable=True),
        sa.Column("first_seen", api.geometry.UtcDateTime(), nullable=True),
        sa.Column("last_seen", api.geometry.UtcDateTime(), nullable=True),
        sa.Column("evidence_path", sa.Text(), nullable=True),
        sa.Column("frame_path", sa.Text(), nullable=True),
        sa.Column("frame_box", sa.JSON(), nullable=True),
        sa.Column("error_m", sa.Float(), nullable=True),
    )


def upgrade() -> None:
    for column in _columns():  # plain ADD COLUMN: SQLite keeps the table (and its R*Tree triggers) as it is
        op.add_column("flags", column)


def downgrade() -> None:
    with op.batch_alter_table("flags", schema=None) as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
