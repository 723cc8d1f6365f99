"""device-srv's schema, one step per version. Each step keeps its own table definitions so
that later changes to the repository never rewrite history."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Connection, MetaData, String, Table
from sqlalchemy.schema import CreateTable

from micro.db import Migration


def _v1_devices(conn: Connection) -> None:
    devices = Table(
        "devices",
        MetaData(),
        Column("name", String(63), primary_key=True),
        Column("active", Boolean, nullable=False),
    )
    # IF NOT EXISTS: files and databases from before versioned migrations already have
    # this table and no schema_version; they open unchanged.
    conn.execute(CreateTable(devices, if_not_exists=True))


MIGRATIONS = (Migration(1, "devices table", _v1_devices),)
