"""user-srv's schema, one step per version. Each step keeps its own table definitions so
that later changes to the repository never rewrite history."""

from __future__ import annotations

from sqlalchemy import Column, Connection, DateTime, Integer, MetaData, String, Table

from micro.db import Migration


def _v1_users(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "users",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_name", String(64), nullable=False, unique=True),
        Column("password_hash", String(255), nullable=False),
        Column("role", String(16), nullable=False),
        Column("create_time", DateTime(timezone=True), nullable=False),
    )
    meta.create_all(conn)


MIGRATIONS = (Migration(1, "users table", _v1_users),)
