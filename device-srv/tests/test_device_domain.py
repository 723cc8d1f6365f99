"""Device names, page tokens and the device list of the config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from device_srv.config import DeviceSrvConfig
from device_srv.domain import decode_page_token, encode_page_token, name_problem


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
    token = encode_page_token("device2")
    assert "device2" not in token
    assert decode_page_token(token) == "device2"


@pytest.mark.parametrize("token", ["", "???", "ZGV2aWNlMg", encode_page_token("bad name")])
def test_foreign_page_tokens_are_refused(token: str) -> None:
    # "ZGV2aWNlMg" is base64 of "device2" without the token's prefix.
    assert decode_page_token(token) is None


def test_the_config_refuses_a_bad_device_list() -> None:
    with pytest.raises(ValidationError, match="may contain only"):
        DeviceSrvConfig.model_validate({"devices": [{"name": "dev ice", "active": True}]})
    with pytest.raises(ValidationError, match="listed more than once: twice"):
        DeviceSrvConfig.model_validate(
            {"devices": [{"name": "twice", "active": True}, {"name": "twice", "active": True}]}
        )
    with pytest.raises(ValidationError, match="active"):
        DeviceSrvConfig.model_validate({"devices": [{"name": "device1"}]})
