"""user-srv's use cases on a real SQLite file, without any server."""

from __future__ import annotations

import grpc
import pytest
from pydantic import SecretStr

from micro.errors import ServiceError
from user_srv.attempts import LoginBudgets
from user_srv.config import Argon2Config, BootstrapUser
from user_srv.domain import Role
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import BAD_CREDENTIALS, UserUseCases


async def test_created_user_verifies_with_its_password(usecases: UserUseCases) -> None:
    created = await usecases.create_user("thangn", "123456")

    user = await usecases.verify_password("thangn", "123456")

    assert user == created
    assert user.id == "1"
    assert user.role is Role.USER


async def test_unknown_user_and_wrong_password_give_the_same_error(
    usecases: UserUseCases,
) -> None:
    await usecases.create_user("thangn", "123456")

    with pytest.raises(ServiceError) as wrong_password:
        await usecases.verify_password("thangn", "654321")
    with pytest.raises(ServiceError) as unknown_user:
        await usecases.verify_password("nobody", "123456")

    for error in (wrong_password.value, unknown_user.value):
        assert error.code is grpc.StatusCode.UNAUTHENTICATED
        assert error.message == BAD_CREDENTIALS
        assert error.field is None


async def test_duplicate_user_name_is_already_exists(usecases: UserUseCases) -> None:
    await usecases.create_user("alice", "secret-1")

    with pytest.raises(ServiceError) as caught:
        await usecases.create_user("alice", "secret-2")

    assert caught.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.field == "userName"
    # The first password still works: the duplicate changed nothing.
    assert (await usecases.verify_password("alice", "secret-1")).user_name == "alice"


@pytest.mark.parametrize("name", ["", "a" * 65, "thắng", "with space", "semi;colon", "tab\t"])
async def test_invalid_user_names_are_refused_with_the_rules(
    usecases: UserUseCases, name: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await usecases.create_user(name, "123456")

    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "userName"
    assert caught.value.message.startswith("userName: must")


@pytest.mark.parametrize("password", ["", "12345", "x" * 129])
async def test_passwords_outside_the_rules_are_refused(
    usecases: UserUseCases, password: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await usecases.create_user("bob", password)

    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == "password: must be 6-128 characters"
    with pytest.raises(ServiceError) as lookup:
        await usecases.get_user_by_name("bob")
    assert lookup.value.code is grpc.StatusCode.NOT_FOUND


async def test_oversized_offered_password_is_refused_before_hashing(
    usecases: UserUseCases,
) -> None:
    with pytest.raises(ServiceError) as caught:
        await usecases.verify_password("thangn", "x" * 10_000)

    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "password"


async def test_hash_is_upgraded_when_parameters_change(
    repository: SqlUserRepository, usecases: UserUseCases, budgets: LoginBudgets
) -> None:
    await usecases.create_user("carol", "password1")
    old_hash = (await repository.by_name("carol")).password_hash  # type: ignore[union-attr]
    stronger = Argon2PasswordHasher(
        Argon2Config(time_cost=2, memory_kib=2048, parallelism=1, max_concurrency=1)
    )
    try:
        upgraded = UserUseCases(repository, stronger, budgets)

        await upgraded.verify_password("carol", "password1")

        new_hash = (await repository.by_name("carol")).password_hash  # type: ignore[union-attr]
        assert new_hash != old_hash
        assert "m=2048,t=2,p=1" in new_hash
        assert not stronger.needs_rehash(new_hash)
        assert (await upgraded.verify_password("carol", "password1")).user_name == "carol"
    finally:
        stronger.close()


async def test_users_are_listed_in_pages_with_opaque_tokens(usecases: UserUseCases) -> None:
    for i in range(5):
        await usecases.create_user(f"user{i}", "password")

    names: list[str] = []
    token = ""
    pages = 0
    while True:
        page, token = await usecases.list_users(2, token)
        names += [u.user_name for u in page]
        pages += 1
        if not token:
            break
        assert "user" not in token  # nothing readable leaks through the token

    assert names == [f"user{i}" for i in range(5)]
    assert pages == 3


@pytest.mark.parametrize("token", ["garbage", "dXNlcnMvdjEvYWJj", "!!"])
async def test_forged_page_token_is_invalid_argument(usecases: UserUseCases, token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        await usecases.list_users(2, token)

    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "pageToken"


async def test_negative_page_size_is_invalid_argument(usecases: UserUseCases) -> None:
    with pytest.raises(ServiceError) as caught:
        await usecases.list_users(-1, "")

    assert caught.value.field == "pageSize"


async def test_get_user_by_id_and_name(usecases: UserUseCases) -> None:
    created = await usecases.create_user("dave", "password", Role.ADMIN)

    assert await usecases.get_user_by_id(created.id) == created
    assert await usecases.get_user_by_name("dave") == created
    with pytest.raises(ServiceError) as missing:
        await usecases.get_user_by_id("999")
    assert missing.value.code is grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServiceError) as bad_id:
        await usecases.get_user_by_id("abc")
    assert bad_id.value.code is grpc.StatusCode.INVALID_ARGUMENT
    # str.isdigit() accepts "²", which int() refuses: it must be a 400, not a crash.
    with pytest.raises(ServiceError) as superscript:
        await usecases.get_user_by_id("²")
    assert superscript.value.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_bootstrap_creates_missing_users_once(usecases: UserUseCases) -> None:
    wanted = [
        BootstrapUser(user_name="thangn", password=SecretStr("123456")),
        BootstrapUser(user_name="root", password=SecretStr("rootpass"), role="admin"),
    ]

    assert await usecases.bootstrap(wanted) == 2
    assert await usecases.bootstrap(wanted) == 0

    first = await usecases.verify_password("thangn", "123456")
    assert first.id == "1"
    assert (await usecases.get_user_by_name("root")).role is Role.ADMIN


async def test_bootstrap_never_overwrites_an_existing_password(usecases: UserUseCases) -> None:
    await usecases.create_user("thangn", "changed-since")

    await usecases.bootstrap([BootstrapUser(user_name="thangn", password=SecretStr("123456"))])

    with pytest.raises(ServiceError):
        await usecases.verify_password("thangn", "123456")


class CountingHasher(Argon2PasswordHasher):
    """The real hasher, counting the argon2 verifications it runs."""

    def __init__(self) -> None:
        super().__init__(Argon2Config(time_cost=1, memory_kib=1024, max_concurrency=1))
        self.verifications = 0

    def _check(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return super()._check(password_hash, password)


async def test_unknown_user_costs_one_verification_like_a_wrong_password(
    repository: SqlUserRepository, budgets: LoginBudgets
) -> None:
    hasher = CountingHasher()
    usecases = UserUseCases(repository, hasher, budgets)
    try:
        await usecases.create_user("thangn", "123456")
        costs = []
        for name in ("thangn", "ghost"):
            before = hasher.verifications
            with pytest.raises(ServiceError):
                await usecases.verify_password(name, "wrong-password")
            costs.append(hasher.verifications - before)
    finally:
        hasher.close()

    assert costs == [1, 1]
