"""Accept header negotiation between JSON and the original plain text."""

from __future__ import annotations

import pytest

from data_srv.negotiation import ReplyFormat, reply_format


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ReplyFormat.JSON),
        ("", ReplyFormat.JSON),
        ("*/*", ReplyFormat.JSON),
        ("application/json", ReplyFormat.JSON),
        ("text/plain", ReplyFormat.TEXT),
        ("TEXT/PLAIN; charset=utf-8", ReplyFormat.TEXT),
        ("text/*", ReplyFormat.TEXT),
        ("text/plain, */*", ReplyFormat.TEXT),
        ("text/plain, application/json", ReplyFormat.JSON),
        ("text/plain;q=0.5, application/json", ReplyFormat.JSON),
        ("application/json;q=0.4, text/plain;q=0.9", ReplyFormat.TEXT),
        ("text/plain;q=0", ReplyFormat.JSON),
        ("text/plain;q=abc", ReplyFormat.JSON),
        ("image/png", ReplyFormat.JSON),
        (",,;", ReplyFormat.JSON),
    ],
)
def test_reply_format(accept: str | None, expected: ReplyFormat) -> None:
    assert reply_format(accept) is expected
