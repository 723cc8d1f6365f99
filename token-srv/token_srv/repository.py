"""Refresh tokens, their sessions (families) and revoked access tokens in a SQL database,
behind a small interface.

A rotation and a family's revocation both lock the family's row first (PostgreSQL: a row
lock; SQLite: the file's write lock), so they never interleave: a family revoked by reuse
detection cannot gain a successor that a rotation was about to insert.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from micro.db import UtcDateTime
from micro.idempotency import Once
from token_srv.domain import RefreshRecord, Subject


class Rotation(enum.Enum):
    """How a rotation ended; only ROTATED stored a successor."""

    ROTATED = "rotated"
    REUSED = "reused"  # the token was spent already: the family is revoked now
    ENDED = "ended"  # the family is revoked, or past its absolute lifetime


@dataclass(frozen=True)
class RevocationEntry:
    seq: int  # increases in commit order: a watcher's cursor
    jti: str
    expires_at: datetime


class TokenRepository(Protocol):
    async def start_session(
        self, record: RefreshRecord, started_at: datetime, once: Once[None] | None = None
    ) -> None:
        """A new family with its first refresh token, in one transaction (with a keyed
        call's outcome)."""
        ...

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None: ...

    async def session_start(self, family_id: str) -> datetime | None:
        """When the family's login happened; None when it is unknown or revoked."""
        ...

    async def rotate(
        self,
        token_hash: str,
        successor: RefreshRecord,
        at: datetime,
        started_after: datetime,
        once: Once[Rotation] | None = None,
    ) -> Rotation:
        """Spend a live token and store its successor in one transaction; a spent token
        revokes its family instead, as does a family started before `started_after`. A
        keyed call's outcome commits with it; a repeat of it replays (micro.idempotency)
        before the token is looked at, so it is never taken for reuse."""
        ...

    async def revoke_family(self, family_id: str, at: datetime) -> None: ...

    async def revoke_access(self, jti: str, expires_at: datetime) -> None: ...

    async def is_access_revoked(self, jti: str) -> bool: ...

    async def revocations_after(
        self, after: int, now: datetime, limit: int
    ) -> list[RevocationEntry]:
        """Unexpired revocations numbered above `after`, lowest first, at most `limit`."""
        ...

    async def purge_expired(self, now: datetime) -> None:
        """Forget tokens past their expiry: they are refused on expiry alone."""
        ...


_meta = MetaData()
refresh_tokens = Table(
    "refresh_tokens",
    _meta,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(32), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("spent_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
refresh_families = Table(
    "refresh_families",
    _meta,
    Column("family_id", String(32), primary_key=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
access_revocations = Table(
    "access_revocations",
    _meta,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("jti", String(64), nullable=False, unique=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)


def _record(row: Any) -> RefreshRecord:
    return RefreshRecord(
        token_hash=row.token_hash,
        family_id=row.family_id,
        subject=Subject(row.user_id, row.user_name, row.role, row.platform),
        expires_at=row.expires_at,
        spent_at=row.spent_at,
        revoked_at=row.revoked_at,
    )


def _token_row(record: RefreshRecord) -> dict[str, Any]:
    return {
        "token_hash": record.token_hash,
        "family_id": record.family_id,
        "user_id": record.subject.user_id,
        "user_name": record.subject.user_name,
        "role": record.subject.role,
        "platform": record.subject.platform,
        "expires_at": record.expires_at,
        "spent_at": record.spent_at,
        "revoked_at": record.revoked_at,
    }


class SqlTokenRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds SQLite's write lock from its start: the driver would
        begin only at the first write, after this transaction's reads."""
        async with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    async def start_session(
        self, record: RefreshRecord, started_at: datetime, once: Once[None] | None = None
    ) -> None:
        async with self._writing() as conn:
            if once is not None:
                await once.claim(conn)
            await conn.execute(
                refresh_families.insert().values(family_id=record.family_id, started_at=started_at)
            )
            await conn.execute(refresh_tokens.insert().values(**_token_row(record)))
            if once is not None:
                await once.settle(conn, None)

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None:
        query = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    async def session_start(self, family_id: str) -> datetime | None:
        query = select(refresh_families.c.started_at).where(
            refresh_families.c.family_id == family_id, refresh_families.c.revoked_at.is_(None)
        )
        async with self._engine.connect() as conn:
            started: datetime | None = (await conn.execute(query)).scalar()
        return started

    async def rotate(
        self,
        token_hash: str,
        successor: RefreshRecord,
        at: datetime,
        started_after: datetime,
        once: Once[Rotation] | None = None,
    ) -> Rotation:
        async with self._writing() as conn:
            if once is not None:
                await once.claim(conn)
            outcome = await self._rotate(conn, token_hash, successor, at, started_after)
            if once is not None:
                await once.settle(conn, outcome)
        return outcome

    async def _rotate(
        self,
        conn: AsyncConnection,
        token_hash: str,
        successor: RefreshRecord,
        at: datetime,
        started_after: datetime,
    ) -> Rotation:
        family = (
            await conn.execute(
                select(refresh_families)
                .where(refresh_families.c.family_id == successor.family_id)
                .with_for_update()
            )
        ).first()
        if family is None or family.revoked_at is not None:
            return Rotation.ENDED
        if family.started_at < started_after:
            return Rotation.ENDED
        spent = await conn.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.token_hash == token_hash,
                refresh_tokens.c.family_id == successor.family_id,
                refresh_tokens.c.spent_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(spent_at=at)
        )
        if spent.rowcount != 1:
            # A spent token offered again means it leaked: end the whole session.
            await self._revoke_family(conn, successor.family_id, at)
            return Rotation.REUSED
        await conn.execute(refresh_tokens.insert().values(**_token_row(successor)))
        return Rotation.ROTATED

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        async with self._writing() as conn:
            await self._revoke_family(conn, family_id, at)

    @staticmethod
    async def _revoke_family(conn: AsyncConnection, family_id: str, at: datetime) -> None:
        # The family row first: on PostgreSQL this waits for a rotation in flight, and
        # the tokens' update that follows sees the successor it committed.
        await conn.execute(
            update(refresh_families)
            .where(
                refresh_families.c.family_id == family_id, refresh_families.c.revoked_at.is_(None)
            )
            .values(revoked_at=at)
        )
        await conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_access(self, jti: str, expires_at: datetime) -> None:
        try:
            async with self._writing() as conn:
                if conn.dialect.name == "postgresql":
                    # One writer at a time: seq order is then commit order, so a watcher
                    # past seq n never learns later of a revocation numbered below n.
                    await conn.execute(text("LOCK TABLE access_revocations IN EXCLUSIVE MODE"))
                await conn.execute(
                    access_revocations.insert().values(jti=jti, expires_at=expires_at)
                )
        except IntegrityError:
            pass  # revoked already: revoking twice is not an error

    async def is_access_revoked(self, jti: str) -> bool:
        query = select(access_revocations.c.seq).where(access_revocations.c.jti == jti)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def revocations_after(
        self, after: int, now: datetime, limit: int
    ) -> list[RevocationEntry]:
        query = (
            select(access_revocations)
            .where(access_revocations.c.seq > after, access_revocations.c.expires_at > now)
            .order_by(access_revocations.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [RevocationEntry(r.seq, r.jti, r.expires_at) for r in rows]

    async def purge_expired(self, now: datetime) -> None:
        async with self._writing() as conn:
            await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < now))
            # A family without tokens left can never be refreshed again.
            await conn.execute(
                delete(refresh_families).where(
                    ~select(refresh_tokens.c.token_hash)
                    .where(refresh_tokens.c.family_id == refresh_families.c.family_id)
                    .exists()
                )
            )
            await conn.execute(
                delete(access_revocations).where(access_revocations.c.expires_at < now)
            )
