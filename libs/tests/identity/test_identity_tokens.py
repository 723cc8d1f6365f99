"""The callee verifies a caller's token through micro's gRPC server: every refusal has
its code and a message naming what is wrong, never the token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from micro.testing.service_tokens import Issuer, claims, sign

StartGuarded = Any  # the start_guarded fixture of conftest.py


def refusals(reason: str) -> float:
    value = REGISTRY.get_sample_value("micro_identity_refusals_total", {"reason": reason})
    return value or 0.0


async def test_a_valid_token_is_the_handlers_caller(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    guarded = await start_guarded()
    assert await guarded.echo(sign(issuer, claims())) == "system:serviceaccount:default:admin-srv"


async def test_no_token_is_unauthenticated_and_counted(start_guarded: StartGuarded) -> None:
    guarded = await start_guarded()
    before = refusals("missing")
    error = await guarded.refusal(None)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "caller identity: missing x-micro-identity metadata"
    assert refusals("missing") == before + 1


async def test_expired_other_audience_and_unbound_tokens_are_refused(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    guarded = await start_guarded()
    cases = {
        "expired": sign(issuer, claims(lifetime_s=-60)),
        "wrong audience": sign(issuer, claims(audience="go-micro.user-srv")),
        "not a pod-bound service-account token": sign(issuer, claims(bound=False)),
        "wrong issuer": sign(issuer, {**claims(), "iss": "https://other.example"}),
    }
    for rule, token in cases.items():
        error = await guarded.refusal(token)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, rule
        assert rule in (error.details() or ""), rule
        assert token not in (error.details() or "")


async def test_rs256_is_accepted_and_hs256_refused(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    issuer.add_key("rsa-1", algorithm="RS256")
    guarded = await start_guarded()
    assert (await guarded.echo(sign(issuer, claims(), kid="rsa-1"))).endswith(":admin-srv")
    forged = jwt.encode(
        claims(), "a shared secret of thirty-two bytes", algorithm="HS256", headers={"kid": "key-1"}
    )
    error = await guarded.refusal(forged)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "caller identity: algorithm 'HS256' is not accepted"


async def test_reflection_needs_identity_too(start_guarded: StartGuarded) -> None:
    guarded = await start_guarded()
    stub = reflection_pb2_grpc.ServerReflectionStub(guarded.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stub.ServerReflectionInfo(iter([request])):
            pass
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_bad_signature_is_refused(issuer: Issuer, start_guarded: StartGuarded) -> None:
    guarded = await start_guarded()
    header, body, _ = sign(issuer, claims()).split(".")
    _, _, other = sign(issuer, claims(account="data-srv")).split(".")
    error = await guarded.refusal(f"{header}.{body}.{other}")
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "caller identity: bad signature"


async def test_an_unknown_key_refetches_rate_limited(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    guarded = await start_guarded()
    await guarded.echo(sign(issuer, claims()))
    assert issuer.requests["/openid/v1/jwks"] == 1
    # A key the issuer never published: the first unknown kid refetches at most once
    # per interval, so a flood of made-up kids costs the API nothing more.
    issuer.add_key("stranger", publish=False)
    for _ in range(3):
        error = await guarded.refusal(sign(issuer, claims(), kid="stranger"))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "caller identity: unknown key id 'stranger'"
    assert issuer.requests["/openid/v1/jwks"] == 1


async def test_a_rotated_key_is_fetched_on_its_first_token(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    guarded = await start_guarded(min_refetch=timedelta(0))
    await guarded.echo(sign(issuer, claims()))
    issuer.add_key("key-2")
    assert (await guarded.echo(sign(issuer, claims(), kid="key-2"))).endswith(":admin-srv")
    assert (await guarded.echo(sign(issuer, claims(pod="admin-2")))).endswith(":admin-srv")
    assert issuer.requests["/openid/v1/jwks"] == 2


async def test_keys_are_kept_through_an_api_outage(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    guarded = await start_guarded(min_refetch=timedelta(0))
    await guarded.echo(sign(issuer, claims()))
    issuer.down = True
    # A new token makes no difference: verified offline with the keys kept.
    assert (await guarded.echo(sign(issuer, claims(pod="admin-2")))).endswith(":admin-srv")
    error = await guarded.refusal(sign(issuer, claims(), kid="key-1") + "x")
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_keys_unavailable_at_start_refuse_until_the_api_answers(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    issuer.down = True
    guarded = await start_guarded(min_refetch=timedelta(0))
    error = await guarded.refusal(sign(issuer, claims()))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "caller identity: issuer keys unavailable"
    issuer.down = False
    assert (await guarded.echo(sign(issuer, claims()))).endswith(":admin-srv")


async def test_each_token_is_verified_once(issuer: Issuer, start_guarded: StartGuarded) -> None:
    guarded = await start_guarded()
    token = sign(issuer, claims())
    for _ in range(5):
        await guarded.echo(token)
    assert guarded.guard.verifier.verifications == 1
    await guarded.echo(sign(issuer, claims(pod="admin-2")))
    assert guarded.guard.verifier.verifications == 2


async def test_a_method_not_allowed_is_permission_denied_naming_caller_and_method(
    issuer: Issuer, start_guarded: StartGuarded
) -> None:
    guarded = await start_guarded()
    before = refusals("denied")
    error = await guarded.refusal(sign(issuer, claims()), method="put")
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == (
        "system:serviceaccount:default:admin-srv may not call /echo.v1.EchoService/Put"
    )
    other = await guarded.refusal(sign(issuer, claims(account="data-srv")))
    assert other.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "system:serviceaccount:default:data-srv" in (other.details() or "")
    assert refusals("denied") == before + 2


async def test_health_needs_no_identity(start_guarded: StartGuarded) -> None:
    guarded = await start_guarded()
    health = health_pb2_grpc.HealthStub(guarded.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_refusals_are_logged_once_per_burst_without_the_token(
    issuer: Issuer, start_guarded: StartGuarded, caplog: Any
) -> None:
    guarded = await start_guarded()
    token = sign(issuer, claims(audience="go-micro.user-srv"))
    with caplog.at_level("WARNING", logger="micro.identity"):
        for _ in range(4):
            await guarded.refusal(token)
    lines = [r.getMessage() for r in caplog.records if r.name == "micro.identity"]
    assert len(lines) == 1
    assert "audience" in lines[0]
    assert "127.0.0.1" in lines[0]  # where the unverified caller called from
    assert token not in caplog.text
    assert "system:serviceaccount" not in lines[0]  # unverified: no caller is named
