"""Index building units by (version, building): painting a building looks up its units without scanning
every unit of the plan version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 05:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_building_units_version_building", "building_units", ["version_id", "building_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_building_units_version_building", table_name="building_units")
