"""Every RPC states its idempotency level, which the micro client retries by; a method
that records something is never NO_SIDE_EFFECTS."""

from __future__ import annotations

import importlib
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor

from api.micro.v1 import options_pb2

API_DIR = Path(__file__).resolve().parents[1] / "api"


def _methods() -> dict[str, MethodDescriptor]:
    """Every method of every generated api module, new services included."""
    methods: dict[str, MethodDescriptor] = {}
    for path in sorted(API_DIR.rglob("*_pb2.py")):
        module = importlib.import_module(
            ".".join(path.relative_to(API_DIR.parent).with_suffix("").parts)
        )
        for service in module.DESCRIPTOR.services_by_name.values():
            methods.update({method.full_name: method for method in service.methods})
    return methods


def test_every_method_declares_its_level() -> None:
    methods = _methods()
    assert "device_srv.v1.DevSvc.Get" in methods
    undeclared = [n for n, m in methods.items() if not m.GetOptions().HasField("idempotency_level")]
    assert undeclared == []


def test_methods_that_record_something_are_not_no_side_effects() -> None:
    methods = _methods()
    levels = {name: methods[name].GetOptions().idempotency_level for name in methods}
    # Rehashes an outdated hash; revokes: the same effect when repeated.
    for name in (
        "user_srv.v1.UserService.VerifyPassword",
        "token_srv.v1.TokenService.RevokeToken",
        "admin_srv.v1.AuthenticationService.Logout",
    ):
        assert levels[name] == descriptor_pb2.MethodOptions.IDEMPOTENT, name
    # Record failed logins, store or spend refresh tokens: never repeated.
    for name in (
        "admin_srv.v1.AuthenticationService.Login",
        "admin_srv.v1.AuthenticationService.RefreshToken",
        "token_srv.v1.TokenService.GenerateToken",
        "token_srv.v1.TokenService.RefreshToken",
    ):
        assert levels[name] == descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN, name


def test_the_keyed_methods_are_those_whose_servers_keep_outcomes() -> None:
    """`(micro.v1.idempotency_key)` promises that the server answers a repeat with the
    first outcome (micro.idempotency): only methods whose servicer runs through an
    OutcomeStore may declare it, and none of them is NO_SIDE_EFFECTS (never hedged)."""
    methods = _methods()
    keyed = {
        n for n, m in methods.items() if m.GetOptions().Extensions[options_pb2.idempotency_key]
    }
    assert keyed == {
        "echo.v1.EchoService.AppendOnce",
        "token_srv.v1.TokenService.GenerateToken",
        "token_srv.v1.TokenService.RefreshToken",
        "user_srv.v1.UserService.CreateUser",
        "user_srv.v1.UserService.VerifyPassword",  # counted once per key (user_srv.attempts)
    }
    for name in keyed:
        level = methods[name].GetOptions().idempotency_level
        assert level != descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, name
