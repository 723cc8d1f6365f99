"""Revoked tokens refused by JwtVerifier from memory (micro.auth RevocationList), and the
feed that keeps the set (micro.revocation): snapshot pages, cursor, outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from micro.auth import JwtVerifier
from micro.errors import ServiceError
from micro.kube.backoff import Backoff
from micro.revocation import RevocationFeed, RevocationPage, RevokedTokens
from micro.testing.tokens import AUDIENCE, ISSUER, access_claims
from micro.testing.waiting import eventually


class Issuer:
    """An issuer's feed kept in a list: numbered revocations, pages of `page` entries,
    and an outage switch that makes every fetch fail."""

    def __init__(self, page: int = 2) -> None:
        self.entries: list[tuple[str, float]] = []
        self.page = page
        self.down = False
        self.fetches = 0
        self.changed = asyncio.Event()

    def revoke(self, jti: str, exp: float | None = None) -> None:
        self.entries.append((jti, time.time() + 600 if exp is None else exp))
        self.changed.set()

    async def fetch(self, after: int, wait: float) -> RevocationPage:
        self.fetches += 1
        if self.down:
            raise ConnectionError("token-srv is unavailable")
        if after >= len(self.entries) and wait > 0:
            self.changed.clear()
            # A long poll: the answer comes when something is revoked or wait passes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)
        newer = self.entries[after : after + self.page]
        return RevocationPage(newer, after + len(newer), after + len(newer) < len(self.entries))


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@contextlib.asynccontextmanager
async def following(issuer: Issuer, tokens: RevokedTokens) -> AsyncIterator[RevocationFeed]:
    feed = RevocationFeed(issuer.fetch, tokens, wait=0.2, backoff=Backoff(base=0.01, cap=0.05))
    task = asyncio.create_task(feed.run())
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_verifier_refuses_a_revoked_jti_only() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = {**json.loads(OKPAlgorithm.to_jwk(key.public_key())), "kid": "k"}

    async def jwks() -> list[dict[str, str]]:
        return [jwk]

    revoked = RevokedTokens()
    verifier = JwtVerifier(
        jwks, algorithms=["EdDSA"], issuer=ISSUER, audience=[AUDIENCE], revocations=revoked
    )

    def token(jti: str) -> str:
        return jwt.encode(access_claims(jti=jti), key, algorithm="EdDSA", headers={"kid": "k"})

    revoked.add([("gone", time.time() + 60), ("expired-already", time.time() - 1)])

    assert (await verifier.verify(token("kept"))).token_id == "kept"
    with pytest.raises(ServiceError) as refused:
        await verifier.verify(token("gone"))
    assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.message == "access token: revoked"
    # An expired entry is not kept: its token fails on exp anyway.
    assert not revoked.is_revoked("expired-already")
    assert len(revoked) == 1


async def test_the_feed_loads_the_snapshot_then_follows(issuer: Issuer) -> None:
    for n in range(5):  # three pages of two
        issuer.revoke(f"old-{n}")
    tokens = RevokedTokens()

    async with following(issuer, tokens) as feed:
        await asyncio.wait_for(feed.synced.wait(), 10)
        assert all(tokens.is_revoked(f"old-{n}") for n in range(5))
        issuer.revoke("new")
        await eventually(lambda: tokens.is_revoked("new"), "the new revocation")


async def test_an_outage_keeps_the_set_and_the_feed_resumes_at_its_cursor(
    issuer: Issuer,
) -> None:
    issuer.revoke("before")
    tokens = RevokedTokens()

    async with following(issuer, tokens) as feed:
        await asyncio.wait_for(feed.synced.wait(), 10)
        issuer.down = True
        failed_from = issuer.fetches
        await eventually(lambda: issuer.fetches >= failed_from + 3, "retries during the outage")
        assert tokens.is_revoked("before")  # the last set is kept
        issuer.revoke("during")
        assert not tokens.is_revoked("during")  # unknown until the feed is back
        issuer.down = False
        await eventually(lambda: tokens.is_revoked("during"), "the revocation made meanwhile")
        assert tokens.is_revoked("before")
