"""Users and the rules their names, passwords and login clients follow."""

from __future__ import annotations

import ipaddress
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


CLIENT_KEY_RULES = "empty (an unknown client) or 1-64 characters: ASCII letters, digits, '_' or '-'"
_CLIENT_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_client_key(client_key: str) -> None:
    if client_key and _CLIENT_KEY.fullmatch(client_key) is None:
        raise invalid_argument("clientKey", f"must be {CLIENT_KEY_RULES}")


def client_address(text: str) -> str:
    """The address in one canonical spelling (a budget key), "" for none; refuses anything
    that is not an IP address."""
    if not text:
        return ""
    if len(text) > 45 or "%" in text:  # the longest IPv6 spelling; no zone ids as keys
        raise invalid_argument("clientAddress", "must be an IPv4 or IPv6 address")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise invalid_argument("clientAddress", "must be an IPv4 or IPv6 address") from None
