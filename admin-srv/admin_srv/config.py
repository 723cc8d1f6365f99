"""admin-srv's typed configuration: the shared sections plus auth, login limits, upstreams."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from api.device_srv.v1.device_pb2_grpc import DevSvcStub
from api.token_srv.v1.token_pb2_grpc import TokenServiceStub
from api.user_srv.v1.user_pb2_grpc import UserServiceStub
from micro.auth import AuthConfig
from micro.client.factory import service_name_of
from micro.config.model import Duration, Section, ServiceConfig
from micro.config.reload import Reload


class AdminAuthConfig(AuthConfig):
    reload_policy = Reload.RESTART  # the verifier and its JWKS cache are built once

    # Ask token-srv VerifyToken after the local check, so a token revoked at logout is
    # refused at once rather than at its expiry. Always on when HS256 is accepted, since
    # token-srv never hands out the HMAC secret.
    remote_verify: bool = False


class LoginLimitConfig(Section):
    """Failed logins allowed per window before 429 / RESOURCE_EXHAUSTED (per replica)."""

    reload_policy = Reload.LIVE  # the limiter reads the current section on every login

    max_failures_per_user: int = Field(default=5, ge=1)
    max_failures_per_address: int = Field(default=20, ge=1)
    window: Duration = timedelta(minutes=5)
    max_tracked_keys: int = Field(default=100_000, ge=100)


class UpstreamsConfig(Section):
    """Registry names of the services admin-srv calls; by default each service's own,
    derived from its proto package."""

    reload_policy = Reload.RESTART  # the stubs are made once

    user_service: str = service_name_of(UserServiceStub)
    token_service: str = service_name_of(TokenServiceStub)
    device_service: str = service_name_of(DevSvcStub)


class AdminSrvConfig(ServiceConfig):
    auth: AdminAuthConfig = AdminAuthConfig(audience=("go-micro",))
    login_limit: LoginLimitConfig = LoginLimitConfig()
    upstreams: UpstreamsConfig = UpstreamsConfig()

    @model_validator(mode="after")
    def _public_grpc_accepts_no_more_than_http(self) -> AdminSrvConfig:
        # Both ports are public: a request too large for HTTP is too large for gRPC. Unset,
        # the gRPC limit is the HTTP one; set larger, the config is refused.
        http, grpc = self.server.http, self.server.grpc
        if http is None or grpc is None or grpc.max_message_bytes <= http.max_body_bytes:
            return self
        if "max_message_bytes" in grpc.model_fields_set:
            raise ValueError(
                f"server.grpc.max_message_bytes ({grpc.max_message_bytes}) must not exceed "
                f"server.http.max_body_bytes ({http.max_body_bytes}): the public gRPC port "
                "accepts at most what the HTTP port accepts"
            )
        limited = grpc.model_copy(update={"max_message_bytes": http.max_body_bytes})
        # The sections are frozen; this runs while the model is being built.
        object.__setattr__(self, "server", self.server.model_copy(update={"grpc": limited}))
        return self
