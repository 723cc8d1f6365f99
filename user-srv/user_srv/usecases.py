"""What user-srv does, independent of gRPC: verify passwords, create, get and list users."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc

from micro import paging
from micro.errors import ServiceError, invalid_argument, not_found, unauthenticated
from micro.idempotency import Once
from user_srv.attempts import KeyedAttempt, LoginBudgets
from user_srv.config import BootstrapUser
from user_srv.domain import (
    Role,
    User,
    check_client_key,
    check_new_password,
    check_offered_password,
    check_user_name,
    client_address,
)
from user_srv.passwords import PasswordHasher
from user_srv.repository import UserExistsError, UserRepository

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
PAGE_TOKEN_PREFIX = "users/v1/"  # noqa: S105 - a page cursor, not a secret
# One message for an unknown user and a wrong password, so neither can be told apart.
BAD_CREDENTIALS = "wrong user name or password"

log = logging.getLogger(__name__)


# Idle budget keys are deleted once per this many login attempts of a replica.
FORGET_IDLE_EVERY = 1000


class UserUseCases:
    def __init__(
        self, users: UserRepository, hasher: PasswordHasher, budgets: LoginBudgets
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._budgets = budgets
        self._attempts = 0

    async def verify_password(
        self,
        user_name: str,
        password: str,
        client_key: str = "",
        address: str = "",
        keyed: KeyedAttempt | None = None,
    ) -> User:
        """The user, when the password is right; the attempt is reserved on the client's
        budgets before any password work and settled after it. A keyed attempt is counted
        once (user_srv.attempts): a repeat of a wrong password is answered that failure."""
        check_user_name(user_name)
        check_offered_password(password)
        check_client_key(client_key)
        budgets = self._budgets.budgets(user_name, client_key, client_address(address))
        if keyed is not None and await keyed.failed_before():
            raise unauthenticated(None, BAD_CREDENTIALS)
        await self._budgets.reserve(budgets)
        # decided: the check ran to a verdict, the one result a key may record.
        checked, success, decided = False, False, False
        outcome: User | BaseException
        try:
            outcome = await self._check_password(user_name, password)
            checked = success = decided = True
        except ServiceError as error:
            # Shed before any check (overloaded): the attempt only frees its hold.
            checked = error.code is not grpc.StatusCode.RESOURCE_EXHAUSTED
            decided = error.code is grpc.StatusCode.UNAUTHENTICATED
            outcome = error
        except BaseException as error:
            # Cancelled or failed mid-check: it may have run, so it counts as a failure.
            checked = True
            outcome = error
        repeat = await self._budgets.settle(
            budgets, checked=checked, success=success, keyed=keyed if decided else None
        )
        await self._forget_idle_now_and_then()
        if repeat:  # another attempt with this key had a wrong password: its answer
            raise unauthenticated(None, BAD_CREDENTIALS)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _forget_idle_now_and_then(self) -> None:
        self._attempts += 1
        if self._attempts % FORGET_IDLE_EVERY == 0:
            await self._budgets.forget_idle()

    async def _check_password(self, user_name: str, password: str) -> User:
        stored = await self._users.by_name(user_name)
        if stored is None:
            await self._hasher.burn(password)
            raise unauthenticated(None, BAD_CREDENTIALS)
        if not await self._hasher.verify(stored.password_hash, password):
            raise unauthenticated(None, BAD_CREDENTIALS)
        if self._hasher.needs_rehash(stored.password_hash):
            # The cost parameters changed since this hash was made: upgrade it now that
            # the plain password is at hand.
            new_hash = await self._hasher.hash(password)
            await self._users.set_password_hash(int(stored.user.id), new_hash)
        return stored.user

    async def create_user(
        self,
        user_name: str,
        password: str,
        role: Role = Role.USER,
        once: Once[User] | None = None,
    ) -> User:
        """The new user; `once` (a keyed call) commits its outcome with the user."""
        check_user_name(user_name)
        check_new_password(password)
        password_hash = await self._hasher.hash(password)
        try:
            return await self._users.add(user_name, password_hash, role, once)
        except UserExistsError:
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"userName: a user named {user_name!r} exists already",
                field="userName",
            ) from None

    async def get_user_by_id(self, user_id: str) -> User:
        if not _is_user_id(user_id):
            raise invalid_argument("id", "must be a user id (digits)")
        user = await self._users.by_id(int(user_id))
        if user is None:
            raise not_found(f"no user with id {user_id}")
        return user

    async def get_user_by_name(self, user_name: str) -> User:
        check_user_name(user_name)
        stored = await self._users.by_name(user_name)
        if stored is None:
            raise not_found(f"no user named {user_name!r}")
        return stored.user

    async def list_users(self, page_size: int, page_token: str) -> tuple[list[User], str]:
        """One page of users and the token of the next page ("" on the last one)."""
        size = paging.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        after = paging.start_after(PAGE_TOKEN_PREFIX, page_token, _is_user_id)
        rows = await self._users.page(int(after or 0), size + 1)
        return paging.split_page(rows, size, PAGE_TOKEN_PREFIX, lambda u: u.id)

    async def bootstrap(self, users: Iterable[BootstrapUser]) -> int:
        """Create the listed users that are missing; answers how many were created."""
        created = 0
        for wanted in users:
            if await self._users.by_name(wanted.user_name) is not None:
                continue
            try:
                await self.create_user(
                    wanted.user_name, wanted.password.get_secret_value(), Role(wanted.role)
                )
            except ServiceError as exc:
                if exc.code != grpc.StatusCode.ALREADY_EXISTS:  # another replica won the race
                    raise
                continue
            created += 1
            log.info("bootstrap user created: %s", wanted.user_name)
        return created


def _is_user_id(text: str) -> bool:
    # Ids are positive integers; 18 digits stay within a 64-bit column. isascii: isdigit
    # alone accepts digits such as "²" that int() refuses.
    return text.isascii() and text.isdigit() and len(text) <= 18
