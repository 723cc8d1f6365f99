"""user-srv's schema steps: the users table, then the login budgets."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table

from micro.db import Migration, create_tables
from micro.idempotency import create_outcomes_table


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


def _v2_login_budgets(meta: MetaData) -> None:
    # A row per budget key rather than columns on users: unknown user names and client
    # addresses are budgeted too, and a device's key is per account and device.
    Table(
        "login_budgets",
        meta,
        Column("key", String(160), primary_key=True),
        Column("failures", Integer, nullable=False),
        Column("lockouts", Integer, nullable=False),
        Column("locked_until", Float, nullable=False),
        Column("in_flight", Integer, nullable=False),
        Column("reserved_at", Float, nullable=False),
        Column("touched", Float, nullable=False),
    )


MIGRATIONS = (
    Migration(1, "users table", create_tables(_v1_users)),
    Migration(2, "login budgets", create_tables(_v2_login_budgets)),
    Migration(3, "outcomes of keyed CreateUser calls", create_outcomes_table),
)
