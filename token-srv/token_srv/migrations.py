"""token-srv's schema steps: the refresh token store and the revoked access tokens."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table

from micro.db import Migration, create_tables


def _v1_tokens(meta: MetaData) -> None:
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


MIGRATIONS = (Migration(1, "refresh tokens and revoked access tokens", create_tables(_v1_tokens)),)
