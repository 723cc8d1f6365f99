"""Users in a SQL database (SQLite or PostgreSQL) behind a small interface."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import UtcDateTime
from micro.idempotency import Once
from user_srv.domain import Role, StoredUser, User


class UserExistsError(Exception):
    """A user with this name exists already."""


class UserRepository(Protocol):
    async def add(
        self, user_name: str, password_hash: str, role: Role, once: Once[User] | None = None
    ) -> User:
        """Store a new user (with a keyed call's outcome); raises UserExistsError on a
        taken name."""
        ...

    async def by_name(self, user_name: str) -> StoredUser | None: ...

    async def by_id(self, user_id: int) -> User | None: ...

    async def set_password_hash(self, user_id: int, password_hash: str) -> None: ...

    async def page(self, after_id: int, limit: int) -> list[User]:
        """Up to limit users with an id above after_id, in id order."""
        ...


_meta = MetaData()
users = Table(
    "users",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_name", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("create_time", UtcDateTime(), nullable=False),
)


def _user(row: Any) -> User:
    return User(
        id=str(row.id), user_name=row.user_name, role=Role(row.role), create_time=row.create_time
    )


class SqlUserRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self, user_name: str, password_hash: str, role: Role, once: Once[User] | None = None
    ) -> User:
        created = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                if once is not None:
                    await once.claim(conn)
                result = await conn.execute(
                    users.insert()
                    .values(
                        user_name=user_name,
                        password_hash=password_hash,
                        role=role.value,
                        create_time=created,
                    )
                    .returning(users.c.id)
                )
                user = User(
                    id=str(result.scalar_one()), user_name=user_name, role=role, create_time=created
                )
                if once is not None:
                    await once.settle(conn, user)
        except IntegrityError as exc:
            raise UserExistsError(user_name) from exc
        return user

    async def by_name(self, user_name: str) -> StoredUser | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.user_name == user_name))).first()
        return None if row is None else StoredUser(_user(row), row.password_hash)

    async def by_id(self, user_id: int) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return None if row is None else _user(row)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def page(self, after_id: int, limit: int) -> list[User]:
        query = select(users).where(users.c.id > after_id).order_by(users.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return [_user(row) for row in await conn.execute(query)]
