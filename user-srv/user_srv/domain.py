"""Users and the rules their names and passwords follow."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from micro.errors import invalid_argument

USER_NAME_RULES = "1-64 characters: ASCII letters, digits, '.', '_' or '-'"
PASSWORD_RULES = "6-128 characters"  # noqa: S105 - a rule, not a password
_USER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
PASSWORD_MIN = 6
PASSWORD_MAX = 128


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    id: str
    user_name: str
    role: Role
    create_time: datetime


@dataclass(frozen=True)
class StoredUser:
    """A user with its password hash: never leaves user-srv."""

    user: User
    password_hash: str


def check_user_name(user_name: str) -> None:
    if not user_name:
        raise invalid_argument("userName", "must not be empty")
    if not _USER_NAME.fullmatch(user_name):
        raise invalid_argument("userName", f"must be {USER_NAME_RULES}")


def check_new_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise invalid_argument("password", f"must be {PASSWORD_RULES}")


def check_offered_password(password: str) -> None:
    """A password offered at login: present and bounded (hashing a huge one is a DoS)."""
    if not password:
        raise invalid_argument("password", "must not be empty")
    if len(password) > PASSWORD_MAX:
        raise invalid_argument("password", f"must be at most {PASSWORD_MAX} characters")
