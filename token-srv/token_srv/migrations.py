"""token-srv's schema steps: the refresh token store, the revoked access tokens, and the
refresh families (sessions) that rotations and revocations lock, and the numbered
revocations that admin-srv follows."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
)

from micro.db import Migration, create_tables
from micro.idempotency import create_outcomes_table


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


def _v2_families(conn: Connection) -> None:
    meta = MetaData()
    families = Table(
        "refresh_families",
        meta,
        Column("family_id", String(32), primary_key=True),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )
    families.create(conn)
    tokens = Table("refresh_tokens", MetaData(), autoload_with=conn)
    # Sessions from before have no recorded start: their absolute lifetime counts from now.
    now = datetime.now(UTC)
    rows = conn.execute(
        select(tokens.c.family_id, func.max(tokens.c.revoked_at)).group_by(tokens.c.family_id)
    ).all()
    if rows:
        conn.execute(
            families.insert(),
            [{"family_id": f, "started_at": now, "revoked_at": revoked} for f, revoked in rows],
        )


def _v3_revocation_feed(conn: Connection) -> None:
    meta = MetaData()
    feed = Table(
        "access_revocations",
        meta,
        # AUTOINCREMENT on SQLite: a purged highest seq is never handed out again, so a
        # watcher's cursor never skips a revocation.
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("jti", String(64), nullable=False, unique=True),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
        sqlite_autoincrement=True,
    )
    feed.create(conn)
    old = Table("revoked_access_tokens", MetaData(), autoload_with=conn)
    rows = conn.execute(select(old.c.jti, old.c.expires_at).order_by(old.c.expires_at)).all()
    if rows:
        conn.execute(feed.insert(), [{"jti": j, "expires_at": e} for j, e in rows])
    old.drop(conn)


MIGRATIONS = (
    Migration(1, "refresh tokens and revoked access tokens", create_tables(_v1_tokens)),
    Migration(2, "refresh families: one row a session, locked by rotations", _v2_families),
    Migration(3, "revoked access tokens numbered in commit order: a feed", _v3_revocation_feed),
    Migration(4, "outcomes of keyed GenerateToken and RefreshToken calls", create_outcomes_table),
)
