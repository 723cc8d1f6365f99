"""CORS from server.http.{origins,methods,headers}, replaced whole when the config changes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.middleware.cors import CORSMiddleware

from micro.config.model import HttpServerConfig
from micro.transport.http_middleware import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class CorsRules:
    """Which cross-origin requests are allowed; no origins means no CORS handling."""

    origins: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET",)
    headers: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: HttpServerConfig | None) -> CorsRules:
        if config is None:
            return cls()
        return cls(config.origins, config.methods or ("GET",), config.headers)


class CorsPolicy:
    """The rules in effect; `update` swaps them in one assignment, so every request sees
    either the old rules or the new ones, never a mix."""

    def __init__(self, rules: CorsRules) -> None:
        self.rules = rules

    def update(self, rules: CorsRules) -> None:
        self.rules = rules


class ReloadableCorsMiddleware:
    """Starlette's CORSMiddleware for the policy's current rules, rebuilt on the first
    request after they change (the server keeps running)."""

    def __init__(self, app: ASGIApp, *, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy
        self._built: tuple[CorsRules, ASGIApp] | None = None

    def _handler(self, rules: CorsRules) -> ASGIApp:
        built = self._built
        if built is not None and built[0] is rules:
            return built[1]
        handler: ASGIApp = self.app
        if rules.origins:
            handler = CORSMiddleware(
                self.app,
                allow_origins=rules.origins,
                allow_methods=rules.methods,
                allow_headers=rules.headers,
            )
        self._built = (rules, handler)
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._handler(self.policy.rules)(scope, receive, send)
