"""The HTTP server: FastAPI on uvicorn (uvloop, httptools) on the service's event loop.

It serves /healthz (alive), a terse /readyz (503 until ready and from shutdown on), and
/openapi.json and /docs unless server.http.docs is false, next to the service's routers
(/metrics and the detailed /readyz are on the admin port: micro.transport.admin). It
answers errors as JSON through the one table in micro.errors, and applies CORS, the body
size limit and the timeout from server.http. Load past server.shedding's limit is shed
(micro.transport.shedding), and from shutdown on every response says `Connection: close`
(micro.transport.drain). CORS and the trusted proxies follow the config
at run time (`HttpServer.cors.update`, `HttpServer.proxies.update`).
/openapi.json declares what the framework answers on every route (micro.transport.openapi).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from micro.auth import AccessPolicy
from micro.config.model import HttpServerConfig, SheddingConfig
from micro.errors import ServiceError, code_for_http_status, invalid_argument
from micro.health import Health
from micro.transport.address import bind_socket, join_address, listen_address
from micro.transport.client_address import ProxyPolicy, ProxyRules
from micro.transport.cors import CorsPolicy, CorsRules, ReloadableCorsMiddleware
from micro.transport.drain import DrainMiddleware
from micro.transport.http_middleware import (
    QUIET_PATHS,
    AuthMiddleware,
    BodyLimitMiddleware,
    ClientAddressMiddleware,
    ObserveMiddleware,
    RecoveryMiddleware,
    TimeoutMiddleware,
    TracingMiddleware,
)
from micro.transport.limit import ConcurrencyLimiter
from micro.transport.openapi import FrameworkAnswers, install
from micro.transport.server import Endpoint
from micro.transport.shedding import SheddingMiddleware

_log = logging.getLogger("micro.http")

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        error.to_json(), status_code=error.http_status, headers=error.http_headers()
    )


def _field_of(location: Sequence[Any]) -> str:
    # ("body", "device", "name") -> "device.name"; the first item says where it came from.
    parts = [str(p) for p in location[1:]] if len(location) > 1 else [str(p) for p in location]
    return ".".join(parts)


def validation_error(exc: RequestValidationError) -> ServiceError:
    """400 naming the first offending field (by its JSON name)."""
    errors = exc.errors()
    if not errors:
        return invalid_argument(None, "invalid request")
    first = errors[0]
    rule = str(first.get("msg", "invalid value"))
    if len(errors) > 1:
        rule += f" (and {len(errors) - 1} more)"
    return invalid_argument(_field_of(first.get("loc", ())) or None, rule)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of this path takes. Starlette's 405 names only the first
    route's methods, where RFC 9110 wants the resource's (GET and POST /admin/v1/users)."""
    return [
        method
        for method in HTTP_METHODS
        if any(r.matches({**scope, "method": method})[0] is Match.FULL for r in app.router.routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return error_response(exc)

    async def on_rpc_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, grpc.RpcError)
        return error_response(ServiceError.from_rpc_error(exc))

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc))

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = code_for_http_status(exc.status_code)
        body = {"code": code.name, "message": str(exc.detail)}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(grpc.RpcError, on_rpc_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)


class Liveness(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str


class Readiness(BaseModel):
    """Ready or not, nothing more: the phase and config errors are on the admin port."""

    model_config = ConfigDict(extra="forbid")
    status: str


def probe_router(health: Health) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers", response_model=Liveness)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: 503 while starting or shutting down",
        response_model=None,
        responses={
            200: {"model": Readiness, "description": "Ready"},
            503: {"model": Readiness, "description": "Starting or shutting down"},
        },
    )
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": health.status}, status_code=200 if health.ready else 503)

    return router


_NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def build_app(
    config: HttpServerConfig,
    *,
    health: Health,
    policy: AccessPolicy,
    title: str,
    version: str,
    cors: CorsPolicy | None = None,
    proxies: ProxyPolicy | None = None,
    shedding: ConcurrencyLimiter | None = None,
) -> FastAPI:
    app = FastAPI(
        # micro's own layers trace, count and log each request: FastAPI's built-in
        # telemetry would record every request a second time.
        telemetry=_NO_FASTAPI_TELEMETRY,
        title=title,
        version=version or "0.0.0",
        docs_url="/docs" if config.docs else None,
        openapi_url="/openapi.json" if config.docs else None,
    )
    install_error_handlers(app)
    install(app, FrameworkAnswers(policy, untimed=QUIET_PATHS))
    app.include_router(probe_router(health))
    # add_middleware puts each new one outermost: this reads innermost first.
    app.add_middleware(AuthMiddleware, policy=policy)
    proxies = proxies if proxies is not None else ProxyPolicy(ProxyRules.of(config))
    app.add_middleware(ClientAddressMiddleware, policy=proxies)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(TimeoutMiddleware, seconds=config.timeout.total_seconds())
    app.add_middleware(RecoveryMiddleware)
    cors = cors if cors is not None else CorsPolicy(CorsRules.of(config))
    app.add_middleware(ReloadableCorsMiddleware, policy=cors)
    app.add_middleware(ObserveMiddleware)
    app.add_middleware(TracingMiddleware)
    if shedding is not None:
        app.add_middleware(SheddingMiddleware, limiter=shedding)
    app.add_middleware(DrainMiddleware, health=health)
    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service's lifecycle owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """A micro.transport.server.Server: `include_router(...)`, then `start()` (answers the
    bound port) and `stop(grace)`."""

    def __init__(
        self,
        config: HttpServerConfig,
        *,
        health: Health,
        policy: AccessPolicy | None = None,
        title: str = "service",
        version: str = "",
        shedding: SheddingConfig | None = None,
    ) -> None:
        self._config = config
        # Follows the config at run time (`.update`); on by default.
        self.shedding = ConcurrencyLimiter(shedding or SheddingConfig(), transport="http")
        self.cors = CorsPolicy(CorsRules.of(config))
        self.proxies = ProxyPolicy(ProxyRules.of(config))
        self.app = build_app(
            config,
            health=health,
            policy=policy if policy is not None else AccessPolicy(),
            title=title,
            version=version,
            cors=self.cors,
            proxies=self.proxies,
            shedding=self.shedding,
        )
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.host = ""
        self.port = 0

    @property
    def endpoint(self) -> Endpoint | None:
        if not self.port:
            return None
        return Endpoint("http", self.host, self.port)

    def include_router(self, router: APIRouter) -> None:
        self.app.include_router(router)

    async def start(self) -> int:
        host, port = listen_address(self._config.addr)
        sock = bind_socket(host, port, "HTTP")
        self.host, self.port = host, sock.getsockname()[1]
        uv_config = uvicorn.Config(
            self.app,
            host=host,
            port=self.port,
            loop="none",  # the service's loop (uvloop when installed) is already running
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # The client's address is micro's to tell (client_address), from server.http
            # trusted_proxies only: uvicorn would trust X-Forwarded-For from 127.0.0.1.
            proxy_headers=False,
            forwarded_allow_ips=[],
        )
        server = _EmbeddedServer(uv_config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
        while not server.started:
            if self._task.done():
                self._task.result()  # raises the start-up failure
                raise OSError(f"HTTP server on {join_address(host, self.port)} did not start")
            await asyncio.sleep(0.01)
        _log.info("[HTTP] server listening on: %s", join_address(host, self.port))
        return self.port

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish for up to `grace` seconds."""
        if self._server is None or self._task is None:
            return
        # uvicorn types this as whole seconds; it only ever feeds asyncio.wait_for.
        self._server.config.timeout_graceful_shutdown = max(grace, 0.0)  # type: ignore[assignment]
        self._server.should_exit = True
        task, self._server, self._task = self._task, None, None
        await task
        _log.info("[HTTP] server stopped")
