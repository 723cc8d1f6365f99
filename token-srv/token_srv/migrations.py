"""token-srv's schema, one step per version. Each step keeps its own table definitions so
that later changes to the repository never rewrite history."""

from __future__ import annotations

from sqlalchemy import Column, Connection, DateTime, Index, MetaData, String, Table

from micro.db import Migration


def _v1_tokens(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "refresh_tokens",
        meta,
        Column("token_hash", String(64), primary_key=True),
        Column("family_id", String(32), nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("user_name", String(64), nullable=False),
        Column("role", String(16), nullable=False),
        Column("platform", String(32), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("spent_at", DateTime(timezone=True), nullable=True),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
    )
    Table(
        "revoked_access_tokens",
        meta,
        Column("jti", String(64), primary_key=True),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    )
    meta.create_all(conn)


MIGRATIONS = (Migration(1, "refresh tokens and revoked access tokens", _v1_tokens),)
