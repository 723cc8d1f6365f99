"""Which callers may call which methods: identity.allow, default deny, read per call.

The rules are a live setting: the table is rebuilt from the current rules the first
time a call sees them changed, so a rule added at run time applies to the next call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from micro.config.model import IdentityRule
from micro.identity.principal import CallerIdentity, service_account_principal
from micro.identity.refusals import IdentityRefusal

_PRINCIPAL_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class _Grants:
    methods: frozenset[str]  # "/pkg.Service/Method"
    services: tuple[str, ...]  # "/pkg.Service/" for pkg.Service/*


def _table(rules: Sequence[IdentityRule], namespace: str) -> dict[str, _Grants]:
    methods: dict[str, set[str]] = {}
    services: dict[str, set[str]] = {}
    for rule in rules:
        for caller in rule.callers:
            principal = (
                caller
                if caller.startswith(_PRINCIPAL_PREFIX)
                else service_account_principal(namespace, caller)
            )
            for pattern in rule.methods:
                full = pattern if pattern.startswith("/") else "/" + pattern
                if full.endswith("/*"):
                    services.setdefault(principal, set()).add(full[:-1])
                else:
                    methods.setdefault(principal, set()).add(full)
    return {
        principal: _Grants(
            frozenset(methods.get(principal, ())), tuple(sorted(services.get(principal, ())))
        )
        for principal in methods.keys() | services.keys()
    }


class Authorizer:
    """`authorize(caller, method)`: returns, or IdentityRefusal "denied" naming both."""

    def __init__(self, rules: Callable[[], Sequence[IdentityRule]], namespace: str) -> None:
        self._rules = rules
        self._namespace = namespace  # of a caller named without one
        self._seen: Sequence[IdentityRule] | None = None
        self._table: dict[str, _Grants] = {}

    def authorize(self, caller: CallerIdentity, method: str) -> None:
        rules = self._rules()
        if rules is not self._seen:  # the config changed (its sections are frozen)
            self._table = _table(rules, self._namespace)
            self._seen = rules
        grants = self._table.get(caller.principal)
        if grants is not None and (method in grants.methods or method.startswith(grants.services)):
            return
        raise IdentityRefusal(
            "denied", f"{caller.principal} may not call {method}", caller=caller.principal
        )
