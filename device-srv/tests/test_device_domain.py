"""Device names, page tokens and the device list of the config."""

from __future__ import annotations

import grpc
import pytest
from pydantic import ValidationError

from device_srv.config import DeviceSrvConfig
from device_srv.domain import PAGE_TOKEN_PREFIX, is_valid_name, name_problem
from micro.errors import ServiceError
from micro.paging import decode_page_token, encode_page_token, start_after


@pytest.mark.parametrize("name", ["device1", "a", "A.b_c-9", "x" * 63])
def test_valid_names_have_no_problem(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 64, "must be at most 63 characters (got 64)"),
        ("dev ice", "may contain only"),
        ("dévice", "may contain only"),
        ("dev/1", "may contain only"),
        ("dev\n", "may contain only"),
        ("🙂", "may contain only"),
    ],
)
def test_invalid_names_say_why(name: str, problem: str) -> None:
    found = name_problem(name)
    assert found is not None
    assert found.startswith(problem)


def test_page_token_round_trips_and_is_opaque() -> None:
    token = encode_page_token(PAGE_TOKEN_PREFIX, "device2")
    assert "device2" not in token
    assert decode_page_token(PAGE_TOKEN_PREFIX, token) == "device2"
    assert start_after(PAGE_TOKEN_PREFIX, token, is_valid_name) == "device2"


@pytest.mark.parametrize(
    "token", ["???", "ZGV2aWNlMg", encode_page_token(PAGE_TOKEN_PREFIX, "bad name")]
)
def test_foreign_page_tokens_are_refused(token: str) -> None:
    # "ZGV2aWNlMg" is base64 of "device2" without the token's prefix.
    with pytest.raises(ServiceError) as caught:
        start_after(PAGE_TOKEN_PREFIX, token, is_valid_name)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "pageToken"


def test_no_page_token_is_the_first_page() -> None:
    assert decode_page_token(PAGE_TOKEN_PREFIX, "") is None
    assert start_after(PAGE_TOKEN_PREFIX, "", is_valid_name) is None


def test_the_config_refuses_a_bad_device_list() -> None:
    with pytest.raises(ValidationError, match="may contain only"):
        DeviceSrvConfig.model_validate({"devices": [{"name": "dev ice", "active": True}]})
    with pytest.raises(ValidationError, match="listed more than once: twice"):
        DeviceSrvConfig.model_validate(
            {"devices": [{"name": "twice", "active": True}, {"name": "twice", "active": True}]}
        )
    with pytest.raises(ValidationError, match="active"):
        DeviceSrvConfig.model_validate({"devices": [{"name": "device1"}]})
