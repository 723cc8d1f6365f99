"""A grpc.aio.Channel look-alike whose calls go to a service's instances: generated
stubs are built on it unchanged, and each call picks an instance, with retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import grpc

from micro.client.budget import RetryBudget
from micro.client.guards import DependencyGuards
from micro.client.hedging import Hedger
from micro.client.idempotency import keyed_metadata
from micro.client.outcome import counts_as_failure
from micro.client.pool import Endpoint, InstancePool
from micro.client.retry import backoff_s, retry_delay_s
from micro.client.settings import CallSettings
from micro.config.model import GrpcClientConfig
from micro.deadline import outgoing_timeout_s
from micro.metrics import CLIENT_PROBES_SENT


def unavailable(message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), message, None
    )


def deadline_exceeded(message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), message, None
    )


class BalancedUnaryUnary(grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    """`await stub.Method(request, timeout=..., metadata=...)` over the pool.

    The call returns an awaitable of the response (not a grpc.aio.UnaryUnaryCall):
    errors arrive as grpc.aio.AioRpcError, as from any channel.
    """

    def __init__(
        self,
        pool: InstancePool,
        method: str,
        request_serializer: Any,
        response_deserializer: Any,
        *,
        retryable: bool,
        settings: CallSettings,
        guards: DependencyGuards,
        keyed: bool = False,
        hedger: Hedger | None = None,
    ) -> None:
        self._pool = pool
        self._hedger = hedger  # None: not hedged (only NO_SIDE_EFFECTS methods are)
        self._guards = guards
        self._method = method
        self._serializer = request_serializer
        self._deserializer = response_deserializer
        self._retryable = retryable or keyed  # a keyed repeat is the same call
        self._settings = settings
        self._keyed = keyed
        self._method_name = method.rsplit("/", 1)[-1]  # overrides name the short method

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        if self._keyed:  # one key per logical call: every attempt of it sends the same
            metadata = keyed_metadata(metadata, self._method)
        return self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)

    def _callable(self, endpoint: Endpoint) -> Any:
        multicallable = endpoint.callables.get(self._method)
        if multicallable is None:
            multicallable = endpoint.channel.unary_unary(
                self._method, self._serializer, self._deserializer
            )
            endpoint.callables[self._method] = multicallable
        return multicallable

    async def _invoke(
        self,
        request: Any,
        timeout_s: float | None,
        metadata: Any,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> Any:
        service = self._pool.service_name
        # Read once: a config change applies to later calls.
        cfg = self._settings.resolved(service, self._method_name)
        own_s = cfg.timeout.total_seconds() if timeout_s is None else timeout_s
        budget_s = outgoing_timeout_s(own_s, cfg.deadline.margin.total_seconds())
        if budget_s <= 0:
            raise deadline_exceeded(
                f"{service}: the request being served has no time left for this call (not sent)"
            )
        deadline = asyncio.get_running_loop().time() + budget_s
        # Per call, not per attempt: a call its retry saved was accepted, so one bad
        # instance among several (ejection's business) never trips the breaker.
        breaker = self._guards.breaker(self._method_name)
        if not breaker.allow():
            raise unavailable(
                f"{service}: calls are being shed by the client's breaker (most recent"
                f" {self._method_name} calls failed); try again shortly"
            )
        try:
            response = await self._attempts(
                cfg, deadline, request, metadata, credentials, wait_for_ready, compression
            )
        except grpc.aio.AioRpcError as error:
            breaker.record(accepted=not counts_as_failure(error))
            raise
        breaker.record(accepted=True)
        return response

    async def _attempts(
        self,
        cfg: GrpcClientConfig,
        deadline: float,
        request: Any,
        metadata: Any,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> Any:
        pool = self._pool
        service = pool.service_name
        loop = asyncio.get_running_loop()
        if not pool.started:
            # Past the deadline, answer from what is known: nothing, so UNAVAILABLE.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pool.ready(), max(deadline - loop.time(), 0.0))
        budget = self._guards.budget
        tried: list[Endpoint] = []
        last_error: grpc.aio.AioRpcError | None = None
        delay_s, sent, deposited = 0.0, False, False
        connect_first = not self._retryable and not wait_for_ready
        hedger = self._hedger if cfg.hedging.enabled else None

        def send(endpoint: Endpoint, remaining: float) -> Any:
            return self._callable(endpoint)(
                request,
                timeout=remaining,
                metadata=metadata,
                credentials=credentials,
                wait_for_ready=wait_for_ready,
                compression=compression,
            )

        def hedge() -> Awaitable[Any] | None:
            # On an instance not tried yet, with a retry-budget token.
            endpoint = pool.pick(tried)
            remaining = deadline - loop.time()
            if endpoint is None or remaining <= 0 or not budget.try_spend():
                return None
            tried.append(endpoint)
            return _accounted(endpoint, send(endpoint, remaining))

        def retryable(error: BaseException) -> bool:
            # After a failure the loop retries, or one of the instance (not an answer
            # about the request), a hedged call waits for its other attempts: so an
            # error that reaches the loop never blames an instance that merely lost.
            return isinstance(error, grpc.aio.AioRpcError) and (
                counts_as_failure(error) or retry_delay_s(error, 1, cfg.retry_budget) is not None
            )

        for attempt in range(cfg.max_attempts):
            if attempt:
                assert last_error is not None
                # A retry waits its backoff (or the server's pushback) when that fits
                # the deadline, and one that was sent before takes a budget token.
                # A retry also needs an instance in good standing to go to.
                if (
                    delay_s >= deadline - loop.time()
                    or not pool.any_in_good_standing()
                    or (sent and not budget.try_spend())
                ):
                    raise last_error
                await asyncio.sleep(delay_s)
            endpoint = pool.pick_for_retry(tried) if attempt else pool.pick()
            probe = pool.probing and cfg.balancing.probe_aside and hedger is not None
            if endpoint is not None and probe and not attempt:
                endpoint = _probe_aside(
                    pool, endpoint, budget, lambda e: send(e, deadline - loop.time())
                )
            if endpoint is None:
                if last_error is not None:
                    raise last_error
                raise unavailable(f"no ready instance of {service}")
            endpoint.begin()
            latency_s: float | None = None  # stays None when nothing was learnt
            failed = sent = False
            try:
                tried.append(endpoint)
                started = loop.time()
                remaining = deadline - started
                if remaining <= 0:
                    raise last_error or deadline_exceeded(
                        f"deadline passed before calling {service}"
                    )
                if connect_first and not await _connects_by_deadline(endpoint, remaining):
                    # Never sent, so safe to send elsewhere even when not idempotent: e.g.
                    # the instance crashed and discovery has not removed it yet.
                    latency_s, failed = loop.time() - started, True
                    last_error = unavailable(f"cannot connect to {endpoint.target}")
                    delay_s = backoff_s(attempt + 1, cfg.retry_budget)
                    continue
                if not deposited:  # the call's first attempt sent earns its share
                    budget.sent()
                sent = deposited = True
                try:
                    call = send(endpoint, remaining)
                    if hedger is not None:
                        # When a hedge wins, this attempt reports the call's time: a lower
                        # bound of its own, which steers picks away from a slow instance.
                        call = hedger.call(
                            self._method, call, hedge, cfg=cfg.hedging, retryable=retryable
                        )
                    response = await call
                except grpc.aio.AioRpcError as error:
                    latency_s, failed = loop.time() - started, counts_as_failure(error)
                    delay = retry_delay_s(error, attempt + 1, cfg.retry_budget)
                    if not self._retryable or delay is None:
                        raise
                    last_error, delay_s = error, delay
                else:
                    latency_s = loop.time() - started
                    return response
            finally:
                endpoint.end(latency_s, failed=failed)
        assert last_error is not None
        raise last_error


# Probes in flight: a task needs a reference until it is done.
_PROBES: set[asyncio.Future[Any]] = set()


def _probe_aside(
    pool: InstancePool,
    idle: Endpoint,
    budget: RetryBudget,
    send: Callable[[Endpoint], Awaitable[Any]],
) -> Endpoint:
    """Where a call without side effects goes when the balancer picked `idle` only
    because it had idled: a copy is sent there in the background, with a retry-budget
    token, and its answer only updates that instance's score, while the call goes to
    the best of the others; so no caller waits on an instance that is still slow.
    Without another instance or a token, the call goes to `idle` as picked."""
    other = pool.pick([idle])
    if other is None or not budget.try_spend():
        return idle
    probe = asyncio.ensure_future(_accounted(idle, send(idle)))
    _PROBES.add(probe)
    probe.add_done_callback(_probe_done)
    CLIENT_PROBES_SENT.labels(pool.service_name).inc()
    return other


def _probe_done(probe: asyncio.Future[Any]) -> None:
    _PROBES.discard(probe)
    if not probe.cancelled():
        probe.exception()  # its outcome went to the score; nobody awaits it


async def _accounted(endpoint: Endpoint, call: Awaitable[Any]) -> Any:
    """A hedge's or a probe's attempt, counted on its instance; cancelled, nothing is
    learnt: it started late, so its short run says nothing of the instance."""
    loop = asyncio.get_running_loop()
    endpoint.begin()
    started = loop.time()
    latency_s: float | None = None
    failed = False
    try:
        response = await call
        latency_s = loop.time() - started
        return response
    except grpc.aio.AioRpcError as error:
        latency_s, failed = loop.time() - started, counts_as_failure(error)
        raise
    finally:
        endpoint.end(latency_s, failed=failed)


async def _connects_by_deadline(endpoint: Endpoint, remaining_s: float) -> bool:
    """Whether the endpoint's channel connects; DEADLINE_EXCEEDED when the caller's
    deadline passes while it is still connecting (it did not fail to connect)."""
    try:
        return await _connects(endpoint.channel, remaining_s)
    except TimeoutError:
        raise deadline_exceeded(f"deadline passed while connecting to {endpoint.target}") from None


async def _connects(channel: grpc.aio.Channel, timeout_s: float) -> bool:
    """Whether the channel is, or gets, connected: False once it fails to connect
    (TRANSIENT_FAILURE) or is shut down; TimeoutError when `timeout_s` passes first. A
    READY channel answers at once; an idle one (first call, or its connection dropped)
    connects first."""
    ready = grpc.ChannelConnectivity.READY
    failed = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)
    state = channel.get_state(try_to_connect=True)
    async with asyncio.timeout(timeout_s):
        while state is not ready:
            if state in failed:
                return False
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)
    return True


class _PickedStream:
    """Streaming calls go to one picked instance, without retries."""

    def __init__(self, pool: InstancePool, kind: str, method: str, ser: Any, deser: Any) -> None:
        self._pool, self._kind, self._method = pool, kind, method
        self._ser, self._deser = ser, deser

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        endpoint = self._pool.pick()
        if endpoint is None:
            raise unavailable(f"no ready instance of {self._pool.service_name}")
        factory = getattr(endpoint.channel, self._kind)
        return factory(self._method, self._ser, self._deser)(*args, **kwargs)


class BalancedChannel(grpc.aio.Channel):
    """The channel handed to a generated stub: one per (service, stub class)."""

    def __init__(
        self,
        pool: InstancePool,
        *,
        retryable_methods: frozenset[str],
        settings: CallSettings,
        guards: DependencyGuards,
        keyed_methods: frozenset[str] = frozenset(),
        hedger: Hedger | None = None,
        hedged_methods: frozenset[str] = frozenset(),
    ) -> None:
        self._pool = pool
        self._hedger, self._hedged = hedger, hedged_methods
        self._guards = guards
        self._retryable = retryable_methods
        self._settings = settings
        self._keyed = keyed_methods

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> Any:
        return BalancedUnaryUnary(
            self._pool,
            method,
            request_serializer,
            response_deserializer,
            retryable=method in self._retryable,
            settings=self._settings,
            guards=self._guards,
            keyed=method in self._keyed,
            hedger=self._hedger if method in self._hedged else None,
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> Any:
        return _PickedStream(
            self._pool, "unary_stream", method, request_serializer, response_deserializer
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> Any:
        return _PickedStream(
            self._pool, "stream_unary", method, request_serializer, response_deserializer
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> Any:
        return _PickedStream(
            self._pool, "stream_stream", method, request_serializer, response_deserializer
        )

    async def close(self, grace: float | None = None) -> None:
        """The channels belong to the ClientFactory, which closes them."""

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        if self._pool.endpoints():
            return grpc.ChannelConnectivity.READY
        return grpc.ChannelConnectivity.TRANSIENT_FAILURE

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        raise NotImplementedError("a balanced channel has no single connectivity state")

    async def channel_ready(self) -> None:
        await self._pool.ready()

    async def __aenter__(self) -> BalancedChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        return None
