"""Refresh tokens and revoked access tokens in a SQL database, behind a small interface."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Column, MetaData, String, Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import UtcDateTime
from token_srv.domain import RefreshRecord, Subject


class TokenRepository(Protocol):
    async def add_refresh(self, record: RefreshRecord) -> None: ...

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None: ...

    async def spend_refresh(self, token_hash: str, at: datetime) -> bool:
        """Mark a live token spent; False when it was spent or revoked already (a race)."""
        ...

    async def revoke_family(self, family_id: str, at: datetime) -> None: ...

    async def revoke_access(self, jti: str, expires_at: datetime) -> None: ...

    async def is_access_revoked(self, jti: str) -> bool: ...

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
revoked_access_tokens = Table(
    "revoked_access_tokens",
    _meta,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", UtcDateTime(), nullable=False),
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


class SqlTokenRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add_refresh(self, record: RefreshRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                refresh_tokens.insert().values(
                    token_hash=record.token_hash,
                    family_id=record.family_id,
                    user_id=record.subject.user_id,
                    user_name=record.subject.user_name,
                    role=record.subject.role,
                    platform=record.subject.platform,
                    expires_at=record.expires_at,
                    spent_at=record.spent_at,
                    revoked_at=record.revoked_at,
                )
            )

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None:
        query = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    async def spend_refresh(self, token_hash: str, at: datetime) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash,
                    refresh_tokens.c.spent_at.is_(None),
                    refresh_tokens.c.revoked_at.is_(None),
                )
                .values(spent_at=at)
            )
        return result.rowcount == 1

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None)
                )
                .values(revoked_at=at)
            )

    async def revoke_access(self, jti: str, expires_at: datetime) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    revoked_access_tokens.insert().values(jti=jti, expires_at=expires_at)
                )
        except IntegrityError:
            pass  # revoked already: revoking twice is not an error

    async def is_access_revoked(self, jti: str) -> bool:
        query = select(revoked_access_tokens.c.jti).where(revoked_access_tokens.c.jti == jti)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def purge_expired(self, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < now))
            await conn.execute(
                delete(revoked_access_tokens).where(revoked_access_tokens.c.expires_at < now)
            )
