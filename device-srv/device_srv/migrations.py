"""device-srv's schema steps: the devices table. Files and databases from before
versioned migrations already have it, with no schema_version; they open unchanged."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, MetaData, String, Table

from micro.db import Migration, create_tables


def _v1_devices(meta: MetaData) -> None:
    Table(
        "devices",
        meta,
        Column("name", String(63), primary_key=True),
        Column("active", Boolean, nullable=False),
    )


MIGRATIONS = (Migration(1, "devices table", create_tables(_v1_devices)),)
