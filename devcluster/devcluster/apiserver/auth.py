"""Bearer-token authentication and RBAC authorization, evaluated like kube-apiserver's."""

from __future__ import annotations

import hmac
import pathlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from devcluster.apiserver.signing_keys import SigningKeys
from devcluster.apiserver.status import ApiError
from devcluster.apiserver.store import Store

RBAC = "rbac.authorization.k8s.io"
ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNTS = "system:serviceaccounts"
# Who may read the issuer's discovery document and keys (kube's default binding).
ISSUER_DISCOVERY = "system:service-account-issuer-discovery"
ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600
CLOCK_SKEW_S = 60  # a not-before this far ahead is still accepted, as kube's leeway
# What a pod-bound token adds to its user's extra, as kube-apiserver's authenticator.
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


ANONYMOUS = UserInfo("system:anonymous", (UNAUTHENTICATED,))


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, in RBAC's terms."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


class TokenAuthority:
    """Holds the admin token and signs/validates ServiceAccount JWTs (ES256, as the
    issuer whose keys /openid/v1/jwks publishes)."""

    def __init__(self, pki_dir: pathlib.Path) -> None:
        pki_dir.mkdir(parents=True, exist_ok=True)
        self.admin_token = self._secret(pki_dir / "admin.token")
        self.keys = SigningKeys(pki_dir)

    @staticmethod
    def _secret(path: pathlib.Path) -> str:
        if path.exists():
            return path.read_text().strip()
        value = secrets.token_urlsafe(32)
        path.write_text(value)
        path.chmod(0o600)
        return value

    def issue(
        self,
        namespace: str,
        name: str,
        uid: str,
        audiences: list[str],
        seconds: int,
        bound: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": audiences or [ISSUER],
            "iat": now,
            "nbf": now,
            "exp": now + seconds,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
                **(bound or {}),
            },
        }
        return self.keys.sign(claims), now + seconds

    def claims(self, token: str) -> dict[str, Any] | None:
        """A token's claims when one of the accepted keys signed it and it is current."""
        claims = self.keys.verified_claims(token)
        if claims is None or claims.get("iss") != ISSUER:
            return None
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            return None
        if claims.get("nbf", 0) > now + CLOCK_SKEW_S:
            return None
        return claims


class Authenticator:
    def __init__(self, tokens: TokenAuthority, store: Store) -> None:
        self.tokens = tokens
        self.store = store

    def authenticate(self, authorization: str | None) -> UserInfo:
        """The user for an Authorization header; no header is the anonymous user, a bad
        token is 401 (as kube-apiserver with anonymous auth enabled)."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        # Every token here is ASCII, and compare_digest raises on a non-ASCII str.
        if scheme.lower() != "bearer" or not token or not token.isascii():
            raise ApiError(401, "Unauthorized")
        if hmac.compare_digest(token, self.tokens.admin_token):
            return UserInfo(ADMIN_USER, (MASTERS, AUTHENTICATED))
        claims = self.tokens.claims(token)
        # Only tokens meant for the API itself: a token requested for another audience
        # (a vault, a service) does not authenticate here.
        if claims is None or ISSUER not in (claims.get("aud") or []):
            raise ApiError(401, "Unauthorized")
        info = claims.get("kubernetes.io", {})
        namespace = info.get("namespace", "")
        account = info.get("serviceaccount", {})
        # A token outlives neither its ServiceAccount nor the pod or secret it is bound to
        # (nor a recreated object of the same name).
        bound = [("serviceaccounts", account)] + [
            (f"{kind}s", info[kind]) for kind in ("pod", "secret") if kind in info
        ]
        for plural, reference in bound:
            entry = self.store.get(("", plural), (namespace, reference.get("name", "")))
            if entry is None or entry.obj["metadata"].get("uid") != reference.get("uid"):
                raise ApiError(401, "Unauthorized")
        extra: dict[str, list[str]] = {}
        if "pod" in info:  # which pod calls: in the audit log and SelfSubjectReview
            extra = {
                POD_NAME_KEY: [info["pod"].get("name", "")],
                POD_UID_KEY: [info["pod"].get("uid", "")],
            }
        return UserInfo(
            f"system:serviceaccount:{namespace}:{account['name']}",
            (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED),
            uid=account.get("uid", ""),
            extra=extra,
        )


# RBAC -------------------------------------------------------------------------------------


def _subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _has(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def rule_allows(rule: dict[str, Any], attributes: Attributes) -> bool:
    if not _has(rule.get("verbs"), attributes.verb):
        return False
    if not attributes.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attributes.path:
                return True
            if url.endswith("*") and attributes.path.startswith(url[:-1]):
                return True
        return False
    if not _has(rule.get("apiGroups"), attributes.group):
        return False
    combined = attributes.resource
    if attributes.subresource:
        combined = f"{attributes.resource}/{attributes.subresource}"
    resources = rule.get("resources") or []
    if not (
        "*" in resources
        or combined in resources
        or (attributes.subresource and f"*/{attributes.subresource}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attributes.name in names


class Authorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _role_rules(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            entry = self.store.get((RBAC, "clusterroles"), ("", ref.get("name", "")))
        elif ref.get("kind") == "Role" and namespace:
            entry = self.store.get((RBAC, "roles"), (namespace, ref.get("name", "")))
        else:
            return []
        return list(entry.obj.get("rules") or []) if entry else []

    def allowed(self, user: UserInfo, attributes: Attributes) -> bool:
        if MASTERS in user.groups:
            return True  # as kube-apiserver's privileged-group short cut
        for entry in self.store.entries((RBAC, "clusterrolebindings")):
            binding = entry.obj
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                rules = self._role_rules(binding.get("roleRef", {}), "")
                if any(rule_allows(rule, attributes) for rule in rules):
                    return True
        if not attributes.namespace:
            return False
        for entry in self.store.entries((RBAC, "rolebindings"), attributes.namespace):
            binding = entry.obj
            subjects = binding.get("subjects") or []
            if any(_subject_matches(s, user, attributes.namespace) for s in subjects):
                rules = self._role_rules(binding.get("roleRef", {}), attributes.namespace)
                if any(rule_allows(rule, attributes) for rule in rules):
                    return True
        return False


def forbidden(user: UserInfo, attributes: Attributes) -> ApiError:
    """The 403 Status with kube-apiserver's exact message shape."""
    if not attributes.is_resource:
        return ApiError(
            403,
            f'forbidden: User "{user.name}" cannot {attributes.verb} path "{attributes.path}"',
            details={},
        )
    qualified = attributes.resource
    if attributes.group:
        qualified = f"{attributes.resource}.{attributes.group}"
    subject = f'{qualified} "{attributes.name}"' if attributes.name else qualified
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    scope = (
        f'in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else "at the cluster scope"
    )
    details: dict[str, Any] = {"kind": attributes.resource}
    if attributes.name:
        details["name"] = attributes.name
    if attributes.group:
        details["group"] = attributes.group
    return ApiError(
        403,
        f'{subject} is forbidden: User "{user.name}" cannot {attributes.verb} resource '
        f'"{resource}" in API group "{attributes.group}" {scope}',
        details=details,
    )


def bootstrap_rbac() -> list[tuple[str, dict[str, Any]]]:
    """The default cluster roles and bindings every cluster starts with (a subset)."""

    def role(name: str, rules: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        return "clusterroles", {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            },
            "rules": rules,
        }

    def binding(name: str, group: str) -> tuple[str, dict[str, Any]]:
        return "clusterrolebindings", {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            },
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": group}],
        }

    read = ["get", "list", "watch"]
    readable = [
        (
            "",
            [
                "pods",
                "pods/log",
                "pods/status",
                "configmaps",
                "services",
                "services/status",
                "serviceaccounts",
                "endpoints",
                "events",
                "namespaces",
                "namespaces/status",
            ],
        ),
        ("apps", ["deployments", "deployments/status", "replicasets", "replicasets/status"]),
        ("discovery.k8s.io", ["endpointslices"]),
        ("networking.k8s.io", ["networkpolicies"]),
        ("policy", ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    ]
    view_rules = [{"apiGroups": [g], "resources": r, "verbs": read} for g, r in readable]
    return [
        role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        binding("cluster-admin", MASTERS),
        role(
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/readyz",
                        "/openapi",
                        "/openapi/*",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        binding("system:discovery", AUTHENTICATED),
        role(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"],
                    "verbs": ["create"],
                },
            ],
        ),
        binding("system:basic-user", AUTHENTICATED),
        role(
            "system:public-info-viewer",
            [
                {
                    "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }
            ],
        ),
        (
            "clusterrolebindings",
            {
                **binding("system:public-info-viewer", AUTHENTICATED)[1],
                "subjects": [
                    {"apiGroup": RBAC, "kind": "Group", "name": AUTHENTICATED},
                    {"apiGroup": RBAC, "kind": "Group", "name": UNAUTHENTICATED},
                ],
            },
        ),
        role(
            ISSUER_DISCOVERY,
            [
                {
                    "nonResourceURLs": [
                        "/.well-known/openid-configuration",
                        "/.well-known/openid-configuration/",
                        "/openid/v1/jwks",
                        "/openid/v1/jwks/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        binding(ISSUER_DISCOVERY, SERVICE_ACCOUNTS),
        role("view", view_rules),
    ]
