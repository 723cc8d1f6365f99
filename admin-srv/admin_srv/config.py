"""admin-srv's typed configuration: the shared sections plus auth, device tokens, upstreams."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, model_validator

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


class DeviceTokenConfig(Section):
    """Device tokens given at login (login budgets themselves live in user-srv)."""

    reload_policy = Reload.LIVE  # read on every login

    # The HMAC-SHA256 key, from the Secret admin-srv-device-key (make secrets); never in a
    # ConfigMap. Unset: a random key per process, so devices are known only until restart
    # and only to the replica that issued their token.
    key: SecretStr | None = Field(default=None, min_length=32)
    # How long a device stays known after its last successful login.
    lifetime: Duration = timedelta(days=30)


class UpstreamsConfig(Section):
    """Registry names of the services admin-srv calls; by default each service's own,
    derived from its proto package."""

    reload_policy = Reload.RESTART  # the stubs are made once

    user_service: str = service_name_of(UserServiceStub)
    token_service: str = service_name_of(TokenServiceStub)
    device_service: str = service_name_of(DevSvcStub)


class AdminSrvConfig(ServiceConfig):
    auth: AdminAuthConfig = AdminAuthConfig(audience=("go-micro",))
    device_tokens: DeviceTokenConfig = DeviceTokenConfig()
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
