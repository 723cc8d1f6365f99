"""The typed configuration every service shares; a service subclasses ServiceConfig.

The shape follows the original Go-Micro example's config.yaml (server.http, server.grpc,
client.grpc, registry) and its remote.yaml bootstrap (remote.k8s), so the same files
load unchanged.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from micro.config.merge import deep_merge
from micro.config.overrides import DEPENDENCIES_KEY, split_override
from micro.config.reload import Reload

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)(ms|s|m|h))+\s*$")
# A bare number is seconds; environment overrides deliver it as a string ("0", "1.5").
_SECONDS = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> timedelta:
    """Read a Go-style duration ("1s", "500ms", "1m30s") or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and _SECONDS.match(value):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and _DURATION.match(value):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
        return timedelta(seconds=seconds)
    raise ValueError(f"not a duration: {value!r} (use e.g. 1s, 500ms, 1m30s)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _networks(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"not an IP network: {cidr!r} (use e.g. 10.0.0.0/8)") from None
    return cidrs


# Proxies whose header tells the client's address (micro.transport.client_address); a
# change applies to the next request.
TrustedProxies = Annotated[tuple[str, ...], AfterValidator(_networks), Reload.LIVE]
ProxyHeader = Literal["x-forwarded-for", "forwarded", "x-real-ip"]


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never passes silently.

    Each field's reload policy (micro.config.reload) is declared here in the model: a
    section sets `reload_policy` for its fields, a field may say otherwise with
    `Annotated[T, Reload.LIVE]`. A docstring under a field is its description in
    docs/configuration.md.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    reload_policy: ClassVar[Reload | None] = None


class HttpServerConfig(Section):
    reload_policy = Reload.RESTART  # the server and its middleware are built once

    addr: str = "0.0.0.0:8080"
    timeout: Duration = timedelta(seconds=1)
    """Longest time a request may take before a 504."""
    # CORS, as in the original example's server.http section: the App swaps the rules.
    headers: Annotated[tuple[str, ...], Reload.LIVE] = ()
    """CORS: request headers allowed."""
    methods: Annotated[tuple[str, ...], Reload.LIVE] = ()
    """CORS: methods allowed."""
    origins: Annotated[tuple[str, ...], Reload.LIVE] = ()
    """CORS: origins allowed; none turns CORS handling off."""
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    """Largest request body accepted; a larger one answers 413."""
    docs: bool = True
    """Serve /openapi.json and /docs; false removes both."""
    trusted_proxies: TrustedProxies = ()
    """Peers (CIDRs) trusted to tell the client's address in proxy_header; none: the
    connection's peer is the client and proxy headers are ignored."""
    proxy_header: Annotated[ProxyHeader, Reload.LIVE] = "x-forwarded-for"
    """The header the trusted proxies set; its right-most untrusted hop is the client."""


class GrpcServerConfig(Section):
    reload_policy = Reload.RESTART  # the server and its interceptors are built once

    addr: str = "0.0.0.0:9090"
    timeout: Duration = timedelta(seconds=1)
    """Longest a call may run; a caller's shorter deadline wins."""
    max_message_bytes: int = Field(default=4 << 20, gt=0)
    """Largest message a caller may send (RESOURCE_EXHAUSTED beyond)."""
    public: bool = False
    """This port serves end users: no caller identity is asked here (identity.mode)."""
    trusted_proxies: TrustedProxies = ()
    """Peers (CIDRs) trusted to tell the client's address in proxy_header metadata; none:
    the connection's peer is the client and proxy metadata is ignored."""
    proxy_header: Annotated[ProxyHeader, Reload.LIVE] = "x-forwarded-for"
    """The metadata key the trusted proxies set; its right-most untrusted hop is the client."""


class AdminServerConfig(Section):
    """The admin port: /metrics, /healthz and the detailed /readyz, for probes and
    Prometheus; never registered in discovery, never exposed by a NodePort."""

    reload_policy = Reload.RESTART  # the listener is bound once

    addr: str = "0.0.0.0:9091"
    """Port 0 picks a free port (tests)."""
    timeout: Duration = timedelta(seconds=5)
    """Longest wait for a request's next bytes; an idle keep-alive connection closes then."""


class SheddingConfig(Section):
    """Adaptive load shedding on the gRPC and public HTTP servers (not the admin port,
    never health checks and probes): one setting for both, each server its own limit
    (micro.transport.limit, Gradient2). A call past the limit is answered at once:
    RESOURCE_EXHAUSTED with pushback over gRPC, 503 with Retry-After over HTTP."""

    reload_policy = Reload.LIVE  # the limiter reads it at each call

    enabled: bool = True
    """False admits every call (the limit is still computed and exported)."""
    initial_limit: Annotated[int, Reload.RESTART] = Field(default=20, ge=1)
    """Calls in flight admitted at start, before any latency is known."""
    min_limit: int = Field(default=20, ge=1)
    """The limit never goes below it: fewer calls in flight are never shed."""
    max_limit: int = Field(default=200, ge=1)
    """The limit never goes above it."""
    smoothing: float = Field(default=0.2, gt=0.0, le=1.0)
    """Share of each new estimate taken into the limit; lower reacts slower."""
    tolerance: float = Field(default=1.5, ge=1.0)
    """How many times its long-term average a call's latency may be before the limit
    shrinks."""
    queue_size: int = Field(default=4, ge=0)
    """Calls the limit grows by per sample while latency holds."""
    window: Duration = Field(default=timedelta(seconds=1), gt=timedelta(0))
    """Calls are sampled by the window: each gives one sample, their mean latency."""
    window_calls: int = Field(default=10, ge=1)
    """Calls a window waits for before it gives a sample (a quiet server's is longer)."""

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_limit > self.max_limit:
            raise ValueError(f"min_limit {self.min_limit} is above max_limit {self.max_limit}")
        return self


class ServerConfig(Section):
    reload_policy = Reload.RESTART  # adding or removing a server needs a new process

    http: HttpServerConfig | None = None
    grpc: GrpcServerConfig | None = None
    admin: AdminServerConfig | None = AdminServerConfig()
    """Null turns the admin port off."""
    shedding: SheddingConfig = SheddingConfig()


class HedgingConfig(Section):
    """Hedging of NO_SIDE_EFFECTS calls: a second attempt on another instance when the
    first has not answered after the method's recent latency percentile."""

    reload_policy = Reload.LIVE  # each call reads it when it starts

    enabled: bool = True
    """Hedge slow calls of methods marked NO_SIDE_EFFECTS (never others)."""
    percentile: float = Field(default=95.0, ge=50.0, lt=100.0)
    """The recent latency percentile after which a call is hedged."""
    min_delay: Duration = timedelta(milliseconds=10)
    """The shortest wait before a hedge, however fast the recent answers were."""
    fallback_delay: Duration = timedelta(milliseconds=100)
    """The wait before a hedge while too few answers are known for a percentile."""
    max_hedges: int = Field(default=1, ge=0, le=3)
    """Hedges per call at most (each also needs a retry-budget token); 0: none."""


class BalancingConfig(Section):
    """How each call picks an instance: power of two choices on a score, peak-EWMA
    latency x (in-flight + 1) / EWMA success rate (docs/registry.md, Resilience)."""

    reload_policy = Reload.LIVE  # the pool reads it at each pick and each answer

    latency_decay: Duration = Field(default=timedelta(seconds=2), gt=timedelta(0))
    """Time constant of the latency average: a slowdown counts at once (peak), a
    recovery fades in over about this long."""
    success_decay: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    """Time constant of the success-rate average."""
    min_success_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    """Floor of the success rate the score divides by, so that a score stays finite."""
    idle_pick_after: Duration = Field(default=timedelta(seconds=1), gt=timedelta(0))
    """An instance not picked for this long is picked once when it is drawn, so a
    recovered one gets a chance to show it."""
    probe_aside: bool = True
    """For a hedged (NO_SIDE_EFFECTS) method, that pick is a copy of the call sent aside,
    and the call itself goes to the best of the others: no caller waits on a pod that is
    still slow. False: the call itself goes to the idle instance."""


class EjectionConfig(Section):
    """Outlier ejection: an instance failing too often is left out for a while
    (docs/registry.md, Resilience)."""

    reload_policy = Reload.LIVE  # the pool reads it at each pick and each answer

    enabled: bool = True
    """False: no instance is ejected (and those out now come back at their time)."""
    consecutive_failures: int = Field(default=5, ge=1)
    """Failures in a row that eject an instance."""
    failure_rate: float = Field(default=0.3, gt=0.0, le=1.0)
    """Share of failed calls over `window` that ejects an instance."""
    window: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    """The recent past failure_rate is measured over."""
    min_requests: int = Field(default=20, ge=1)
    """Calls an instance must have had within `window` before failure_rate is judged."""
    base_time: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    """Ejection time; the n-th ejection in a row lasts n times this."""
    max_time: Duration = Field(default=timedelta(minutes=5), gt=timedelta(0))
    """Longest ejection."""
    max_ejected_percent: int = Field(default=50, ge=1, le=100)
    """Most instances out at once, in percent of the set rounded down, but at least one;
    one instance always stays in."""
    success_run: int = Field(default=20, ge=1)
    """Successes in a row after which a returned instance's count of ejections resets
    (until then one failure ejects it again, for longer)."""


class BreakerConfig(Section):
    """Client-side adaptive throttling per (dependency, method), as in the Google SRE
    book's "Handling Overload": a call is refused locally with probability
    max(0, (requests - k x accepts) / (requests + 1)) over the last window."""

    reload_policy = Reload.LIVE  # the breaker reads it at each call

    enabled: bool = True
    """False sends every call (nothing is counted)."""
    k: float = Field(default=2.0, ge=1.0)
    """Accepts are worth k requests: nothing is refused until more than (k-1)/k of the
    recent calls fail; lower refuses sooner."""
    window: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    """How far back requests and accepts are counted; also about how long the refusing
    lasts once the dependency is back."""
    min_requests: int = Field(default=20, ge=1)
    """Fewer requests than this in the window never cause a refusal."""


class RetryBudgetConfig(Section):
    """Retries per dependency from a token bucket: each call sent adds `ratio` tokens,
    `min_per_second` more arrive each second, a retry (or hedge) takes one."""

    reload_policy = Reload.LIVE  # the budget reads it at each call and retry

    enabled: bool = True
    """False: retries are limited by max_attempts only."""
    ratio: float = Field(default=0.2, ge=0.0, le=1.0)
    """Retries allowed per call sent, over time: an outage adds at most this share."""
    min_per_second: float = Field(default=5.0, ge=0.0)
    """Retries allowed each second whatever the traffic, so that a quiet caller can retry."""
    burst: float = Field(default=20.0, ge=1.0)
    """Tokens kept at most (the bucket starts full): retries allowed at once after a calm."""
    backoff: Duration = Field(default=timedelta(milliseconds=25), ge=timedelta(0))
    """Wait before the first retry at most; the n-th waits a random time up to
    backoff x 2^(n-1) (full jitter), so that callers do not retry in step."""
    max_backoff: Duration = Field(default=timedelta(milliseconds=500), ge=timedelta(0))
    """The longest wait between two attempts (a server's pushback excepted)."""
    failing_after: int = Field(default=2, ge=1)
    """Failures in a row after which an instance gets no retries; when every instance
    has failed that often (or is ejected), failed calls are not retried at all."""


class DeadlineConfig(Section):
    """Calls made while serving a request get what is left of its deadline."""

    reload_policy = Reload.LIVE  # each call reads it when it starts

    margin: Duration = Field(default=timedelta(milliseconds=10), ge=timedelta(0))
    """Kept back from the request's remaining time, for this service to answer its own
    caller once the call returns."""


class GrpcClientConfig(Section):
    reload_policy = Reload.LIVE  # the App swaps the settings every call reads at its start

    timeout: Duration = timedelta(seconds=1)
    """Deadline of an outgoing call that names none."""
    max_attempts: int = Field(default=3, ge=1, le=5)
    """Attempts per call, the first included; retries go to another instance."""
    balancing: BalancingConfig = BalancingConfig()
    ejection: EjectionConfig = EjectionConfig()
    hedging: HedgingConfig = HedgingConfig()
    """Hedging of slow NO_SIDE_EFFECTS calls."""
    breaker: BreakerConfig = BreakerConfig()
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    deadline: DeadlineConfig = DeadlineConfig()
    dependencies: dict[str, dict[str, Any]] = {}
    """Overrides per dependency by registry name (go-micro.user-srv): any client.grpc key
    but this one, and `methods` by short method name (VerifyPassword) with the same keys;
    merged key by key over the defaults, a method's over its dependency's."""

    @model_validator(mode="after")
    def _overrides_validate(self) -> Self:
        # A bad override fails the whole config at load, so the last good one stays.
        base = self.model_dump(exclude={DEPENDENCIES_KEY})
        for name, override in self.dependencies.items():
            own, methods = split_override(name, override)
            layers = {f"dependencies[{name!r}]": deep_merge(base, own)}
            for method, keys in methods.items():
                layers[f"dependencies[{name!r}].methods[{method!r}]"] = deep_merge(
                    layers[f"dependencies[{name!r}]"], keys
                )
            for where, values in layers.items():
                try:
                    GrpcClientConfig.model_validate(values)
                except ValidationError as error:
                    raise ValueError(f"{where}: {error}") from None
        return self


class ClientConfig(Section):
    grpc: GrpcClientConfig = GrpcClientConfig()


class KubernetesConfig(Section):
    """Where the Kubernetes API is: in-cluster when empty, else a kubeconfig or URL."""

    reload_policy = Reload.RESTART  # the API client and its watches are made once

    master_url: str = ""
    kubeconfig: str = ""
    namespace: str = ""
    """Empty: the pod's own namespace."""
    label_selector: str = ""
    """Empty: app=<service short name>."""
    field_selector: str = ""


class StaticService(Section):
    name: str
    endpoints: tuple[str, ...]


_ACCOUNT = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
# A service account name, as spec.serviceAccountName holds it (a DNS-1123 subdomain).
_SERVICE_ACCOUNT = re.compile(rf"^{_ACCOUNT}(?:\.{_ACCOUNT})*$")


def _service_account(value: str) -> str:
    if len(value) > 253 or not _SERVICE_ACCOUNT.match(value):
        raise ValueError(f"service account {value!r} is not a DNS-1123 name (e.g. user-srv)")
    return value


ServiceAccountName = Annotated[str, AfterValidator(_service_account)]


class RegistryConfig(Section):
    reload_policy = Reload.RESTART  # registration and discovery start once

    type: Literal["k8s", "endpointslices", "static"] = "k8s"
    k8s: KubernetesConfig = KubernetesConfig()
    prefix: str = "gomicro"
    """Label and annotation prefix (gomicro-service-*)."""
    services: tuple[StaticService, ...] = ()
    """With type static: the instances of each service, e.g. grpc://127.0.0.1:9090."""
    accounts: Annotated[dict[str, ServiceAccountName], Reload.LIVE] = {}
    """The service account each service's Pods must run as, by registry name (e.g.
    go-micro.user-srv: user-srv); unlisted: the short name. Pods claiming a service under
    another account are never routed to."""


class RemoteConfig(Section):
    """The bootstrap's pointer to remote config (the Go example's remote.yaml)."""

    reload_policy = Reload.RESTART  # read from the local layers, which are read at start

    type: Literal["k8s", "none"] = "none"
    k8s: KubernetesConfig = KubernetesConfig()
    # Watched by name so that a Role can grant exactly them (resourceNames).
    secrets: tuple[str, ...] | None = None
    """The Secrets to read, by name; [] reads none; absent: every one the label selector
    matches."""


class LogConfig(Section):
    reload_policy = Reload.LIVE  # micro.log.follow_config

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class TracingConfig(Section):
    reload_policy = Reload.RESTART  # the tracer provider is set up once

    otlp_endpoint: str = ""
    """Empty: no exporter; trace ids still reach the logs."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class ShutdownConfig(Section):
    reload_policy = Reload.LIVE  # read when the shutdown begins

    drain_delay: Duration = timedelta(seconds=2)
    """Time for discovery to converge after deregistering."""
    grace_period: Duration = timedelta(seconds=10)
    """Time for in-flight calls to finish."""


# A method pattern: "pkg.Service/Method" or "pkg.Service/*", optionally with a leading "/".
_METHOD_PATTERN = re.compile(r"^/?[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+/(?:\*|[A-Za-z_]\w*)$")
# A caller: a service account in this namespace, or system:serviceaccount:<ns>:<name>.
_CALLER = re.compile(rf"^(?:system:serviceaccount:{_ACCOUNT}:)?(?:{_ACCOUNT}(?:\.{_ACCOUNT})*)$")


def _method_pattern(value: str) -> str:
    if not _METHOD_PATTERN.match(value):
        raise ValueError(
            f"method {value!r} is not pkg.Service/Method or pkg.Service/* "
            "(e.g. token_srv.v1.TokenService/GenerateToken)"
        )
    return value


def _caller(value: str) -> str:
    if len(value) > 253 or not _CALLER.match(value):
        raise ValueError(
            f"caller {value!r} is not a service account name (DNS-1123, e.g. admin-srv) "
            "nor system:serviceaccount:<namespace>:<name>"
        )
    return value


MethodPattern = Annotated[str, AfterValidator(_method_pattern)]
CallerName = Annotated[str, AfterValidator(_caller)]


class IdentityRule(Section):
    """Which callers may call which methods (micro.identity.authorization)."""

    reload_policy = Reload.LIVE  # the identity layer reads the rules at each call

    callers: tuple[CallerName, ...] = Field(min_length=1)
    """Service account names in this namespace, or system:serviceaccount:<ns>:<name>."""
    methods: tuple[MethodPattern, ...] = Field(min_length=1)
    """pkg.Service/Method or pkg.Service/* (a leading "/" is accepted)."""


class IdentityConfig(Section):
    """Caller identity on internal gRPC ports: projected service-account tokens."""

    reload_policy = Reload.RESTART  # the verifier and the server layer are built once

    mode: Literal["kubernetes", "off"] = "kubernetes"
    """kubernetes: every non-public gRPC port requires a caller token; off: no token sent,
    none required."""
    token_dir: str = "/var/run/secrets/micro/identity"  # noqa: S105 - a folder, not a secret
    """In-container folder of the projected tokens, one file per dependency."""
    issuer: str = ""
    """Empty: the issuer of the API server's discovery document."""
    allow: Annotated[tuple[IdentityRule, ...], Reload.LIVE] = ()
    """Who may call what; a call no rule allows is refused (default deny)."""


def _method_patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_method_pattern(value) for value in values)


class FaultConfig(Section):
    """Fault injection on the gRPC server, for tests and drills only: a delay added to
    calls and a share of calls answered UNAVAILABLE. Off unless configured; a warning
    is logged when it turns on. Health checks are never touched."""

    reload_policy = Reload.LIVE  # the server layer reads it at each call

    delay: Duration = timedelta(0)
    """Added before the handler runs (the call's deadline still applies)."""
    unavailable_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of calls answered UNAVAILABLE without running the handler."""
    methods: Annotated[tuple[str, ...], AfterValidator(_method_patterns)] = ()
    """pkg.Service/Method or pkg.Service/*; none: every method."""
    pods: tuple[str, ...] = ()
    """Names of the pods it applies to (POD_NAME, else HOSTNAME); none: every pod. One
    ConfigMap serves every replica, so a drill on one replica names it here."""


class ServiceConfig(Section):
    """Sections every service has. Services subclass it and add their own sections."""

    server: ServerConfig = ServerConfig()
    client: ClientConfig = ClientConfig()
    registry: RegistryConfig = RegistryConfig()
    remote: RemoteConfig = RemoteConfig()
    log: LogConfig = LogConfig()
    tracing: TracingConfig = TracingConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    identity: IdentityConfig = IdentityConfig()
    fault: FaultConfig = FaultConfig()


def service_config_model(service: str) -> type[ServiceConfig]:
    """The config model of a service folder ("user-srv"): the ServiceConfig subclass its
    <package>/config.py defines that no other one there extends, for tools and tests."""
    module = importlib.import_module(f"{service.replace('-', '_')}.config")
    defined = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceConfig)
        and value.__module__ == module.__name__
    ]
    (model,) = [m for m in defined if not any(o is not m and issubclass(o, m) for o in defined)]
    return model
