"""The contracts: generated code is fresh, and JSON names match the original example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf import json_format

from api.admin_srv.v1 import admin_pb2, admin_pb2_grpc
from api.device_srv.v1 import device_pb2, device_pb2_grpc
from api.token_srv.v1 import token_pb2, token_pb2_grpc
from api.user_srv.v1 import user_pb2_grpc
from micro.client import idempotent_methods
from micro.client.factory import service_name_of

PROTO_DIR = Path(__file__).resolve().parents[1]
GENERATOR = PROTO_DIR / "generate.py"


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_changed_proto_without_regeneration_is_stale(tmp_path: Path) -> None:
    copy_root = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, copy_root, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    proto = copy_root / "api/device_srv/v1/device.proto"
    proto.write_text(
        proto.read_text().replace("bool active = 2;", "bool active = 2;\n  int32 x = 3;")
    )

    result = subprocess.run(
        [sys.executable, str(copy_root / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert "api/device_srv/v1/device_pb2.py" in result.stdout


def test_login_request_reads_the_original_json() -> None:
    request = json_format.Parse(
        '{"userName":"thangn","password":"123456"}', admin_pb2.LoginRequest()
    )
    assert (request.user_name, request.password) == ("thangn", "123456")


def test_login_reply_json_has_the_original_names() -> None:
    reply = admin_pb2.LoginReply(id="1", user_name="thangn", token="t")
    assert json_format.MessageToDict(reply) == {"id": "1", "userName": "thangn", "token": "t"}


def test_grpc_full_names_match_the_original_example() -> None:
    descriptor = admin_pb2.DESCRIPTOR.services_by_name["AuthenticationService"]
    assert descriptor.full_name == "admin_srv.v1.AuthenticationService"
    assert device_pb2.DESCRIPTOR.services_by_name["DevSvc"].full_name == "device_srv.v1.DevSvc"
    assert hasattr(admin_pb2_grpc, "AuthenticationServiceStub")


def test_platform_claim_uses_the_enum_name() -> None:
    name = token_pb2.TokenPlatform.Name(token_pb2.TOKEN_PLATFORM_WEB)
    assert name == "TOKEN_PLATFORM_WEB"


def test_read_only_methods_are_marked_idempotent() -> None:
    dev_svc = device_pb2.DESCRIPTOR.services_by_name["DevSvc"]
    get = dev_svc.methods_by_name["Get"]
    assert get.GetOptions().idempotency_level == get.GetOptions().NO_SIDE_EFFECTS
    login = admin_pb2.DESCRIPTOR.services_by_name["AuthenticationService"].methods_by_name["Login"]
    assert login.GetOptions().idempotency_level == login.GetOptions().IDEMPOTENCY_UNKNOWN


# The framework's own tests use echo.v1; what micro derives from the services'
# contracts is checked here, next to them.
def test_the_registry_name_comes_from_the_proto_package() -> None:
    assert service_name_of(user_pb2_grpc.UserServiceStub) == "go-micro.user-srv"
    assert service_name_of(token_pb2_grpc.TokenServiceStub) == "go-micro.token-srv"
    assert service_name_of(device_pb2_grpc.DevSvcStub) == "go-micro.device-srv"


def test_the_client_retries_the_methods_the_options_allow() -> None:
    assert idempotent_methods(device_pb2_grpc.DevSvcStub) == {
        "/device_srv.v1.DevSvc/Get",
        "/device_srv.v1.DevSvc/List",
    }
    token_methods = idempotent_methods(token_pb2_grpc.TokenServiceStub)
    assert "/token_srv.v1.TokenService/VerifyToken" in token_methods
    assert "/token_srv.v1.TokenService/GenerateToken" not in token_methods
