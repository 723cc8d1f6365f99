"""user-srv's schema steps: the users table."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table

from micro.db import Migration, create_tables


def _v1_users(meta: MetaData) -> None:
    Table(
        "users",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_name", String(64), nullable=False, unique=True),
        Column("password_hash", String(255), nullable=False),
        Column("role", String(16), nullable=False),
        Column("create_time", DateTime(timezone=True), nullable=False),
    )


MIGRATIONS = (Migration(1, "users table", create_tables(_v1_users)),)
