"""Which failed requests the soak under chaos accepts: only a login lost as UNAVAILABLE
with the token-srv process it was sent to (tests/reliability/report.py)."""

from __future__ import annotations

import pytest

from .cluster_load import Request
from .reliability.chaos import ChaosEvent
from .reliability.report import CONNECTION_NOTICE_S, allowed_crash_failure

KILLED_AT = 100.0
TOKEN_SRV_CRASH = ChaosEvent("crash", "token-srv", "token-srv-a", KILLED_AT, 105.0, 100.0003)
RESET = "grpc UNAVAILABLE: Stream removed (recvmsg:Connection reset by peer (104))"


def login(started_after_kill_s: float, error: str = RESET, lasting_s: float = 0.03) -> Request:
    start = KILLED_AT + started_after_kill_s
    return Request("login_grpc", start, start + lasting_s, error)


@pytest.mark.parametrize(
    "request_",
    [
        login(-0.02),  # in flight at the SIGKILL
        login(0.02),  # sent on a connection its caller had not yet seen closed
        login(0.02, error='http 503: {"code":"UNAVAILABLE","message":"Stream removed"}'),
    ],
)
def test_a_login_lost_with_the_killed_token_srv_is_allowed(request_: Request) -> None:
    assert allowed_crash_failure(request_, TOKEN_SRV_CRASH)


@pytest.mark.parametrize(
    ("request_", "event"),
    [
        (login(CONNECTION_NOTICE_S + 0.1), TOKEN_SRV_CRASH),  # long after: callers knew
        (login(-1.0), TOKEN_SRV_CRASH),  # over before the SIGKILL
        (login(0.02, error="http 500: internal error"), TOKEN_SRV_CRASH),
        (Request("device_data", KILLED_AT, KILLED_AT + 0.03, RESET), TOKEN_SRV_CRASH),
        (login(0.02), ChaosEvent("crash", "user-srv", "user-srv-a", KILLED_AT, 105.0, 100.0)),
        (login(0.02), ChaosEvent("delete", "token-srv", "token-srv-a", KILLED_AT, 105.0)),
        (login(0.02), None),
    ],
)
def test_any_other_failure_is_unexpected(request_: Request, event: ChaosEvent | None) -> None:
    assert not allowed_crash_failure(request_, event)
