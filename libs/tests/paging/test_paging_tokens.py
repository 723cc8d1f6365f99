"""micro.paging: page sizes and page tokens as both List services use them."""

from __future__ import annotations

import grpc
import pytest

from micro.errors import ServiceError
from micro.paging import (
    MAX_REQUESTED_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
    page_size,
    split_page,
    start_after,
)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(0, 20), (1, 1), (20, 20), (500, 100), (MAX_REQUESTED_PAGE_SIZE, 100)],
)
def test_page_size_defaults_and_caps(requested: int, expected: int) -> None:
    assert page_size(requested, default=20, maximum=100) == expected


@pytest.mark.parametrize("requested", [-1, -(2**31), MAX_REQUESTED_PAGE_SIZE + 1])
def test_a_page_size_out_of_int32_or_negative_names_the_field(requested: int) -> None:
    with pytest.raises(ServiceError) as caught:
        page_size(requested, default=20, maximum=100)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "pageSize"
    assert str(MAX_REQUESTED_PAGE_SIZE) in caught.value.message


def test_tokens_round_trip_only_under_their_own_prefix() -> None:
    token = encode_page_token("things/v1/", "thing-7")
    assert "thing" not in token
    assert "=" not in token  # no padding: safe in a query string
    assert decode_page_token("things/v1/", token) == "thing-7"
    assert decode_page_token("other/v1/", token) is None
    assert decode_page_token("things/v1/", "%%%") is None


@pytest.mark.parametrize(
    "token", ["%%%", encode_page_token("b/", "1"), encode_page_token("a/", "x")]
)
def test_start_after_refuses_foreign_and_invalid_tokens(token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        start_after("a/", token, str.isdigit)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "pageToken"


def test_start_after_answers_the_key_or_none_for_the_first_page() -> None:
    assert start_after("a/", "", str.isdigit) is None
    assert start_after("a/", encode_page_token("a/", "42"), str.isdigit) == "42"


def test_split_page_tokens_the_last_row_only_when_more_follow() -> None:
    assert split_page([1, 2, 3], 2, "n/", str) == ([1, 2], encode_page_token("n/", "2"))
    assert split_page([1, 2], 2, "n/", str) == ([1, 2], "")
    assert split_page([], 2, "n/", str) == ([], "")
