"""The identity section: rule validation, its defaults and reload policies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from micro.config.model import GrpcServerConfig, IdentityConfig, ServiceConfig
from micro.config.reload import Reload, policy_of


def test_identity_denies_by_default() -> None:
    config = ServiceConfig().identity
    assert config.allow == ()  # no rule: every internal call is refused
    assert GrpcServerConfig().public is False


def test_rules_accept_methods_services_and_both_caller_forms() -> None:
    config = IdentityConfig.model_validate(
        {
            "mode": "kubernetes",
            "allow": [
                {
                    "callers": ["admin-srv", "system:serviceaccount:other:data-srv"],
                    "methods": ["token_srv.v1.TokenService/GenerateToken", "/echo.v1.Echo/*"],
                }
            ],
        }
    )
    (rule,) = config.allow
    assert rule.callers == ("admin-srv", "system:serviceaccount:other:data-srv")


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"callers": ["Admin_Srv"], "methods": ["a.v1.S/M"]}, "allow.0.callers.0"),
        ({"callers": ["system:serviceaccount:ns"], "methods": ["a.v1.S/M"]}, "allow.0.callers.0"),
        ({"callers": ["admin-srv"], "methods": ["GenerateToken"]}, "allow.0.methods.0"),
        ({"callers": ["admin-srv"], "methods": ["a.v1.S/Gen*"]}, "allow.0.methods.0"),
        ({"callers": ["admin-srv"], "methods": []}, "allow.0.methods"),
    ],
)
def test_a_bad_rule_is_an_error_naming_the_field(rule: dict[str, list[str]], named: str) -> None:
    with pytest.raises(ValidationError) as raised:
        IdentityConfig.model_validate({"allow": [rule]})
    assert named in str(raised.value)


def test_only_the_rules_are_live() -> None:
    policies = {name: policy_of(IdentityConfig, name) for name in IdentityConfig.model_fields}
    assert policies == {
        "mode": Reload.RESTART,
        "token_dir": Reload.RESTART,
        "issuer": Reload.RESTART,
        "allow": Reload.LIVE,
    }
    assert policy_of(GrpcServerConfig, "public") is Reload.RESTART
