"""The use cases on their own, over an in-memory device directory, and the two renderings."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from data_srv.render import report_json, report_text
from data_srv.usecases import DeviceDataUseCases, DeviceReport, DeviceSrvUnavailable
from micro.errors import ServiceError


class DictDirectory:
    """Devices in a dict; `failure` is raised instead when set (device-srv's answer)."""

    def __init__(self, devices: dict[str, bool]) -> None:
        self.devices = devices
        self.failure: ServiceError | None = None

    async def get(self, name: str) -> DeviceReport:
        if self.failure is not None:
            raise self.failure
        if name not in self.devices:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"device {name!r} not found")
        return DeviceReport(name, self.devices[name])


def _use_cases(directory: DictDirectory) -> DeviceDataUseCases:
    return DeviceDataUseCases(directory, retry_after=lambda: timedelta(seconds=7))


async def test_report_of_a_known_device() -> None:
    devices = _use_cases(DictDirectory({"device1": True, "device3": False}))
    assert await devices.report("device1") == DeviceReport("device1", True)
    assert await devices.report("device3") == DeviceReport("device3", False)


@pytest.mark.parametrize(
    "failure",
    [
        ServiceError(grpc.StatusCode.NOT_FOUND, "device 'x' not found", field="name"),
        ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "name: must not be empty", field="name"),
    ],
)
async def test_device_srv_answers_pass_through_unchanged(failure: ServiceError) -> None:
    directory = DictDirectory({})
    directory.failure = failure
    with pytest.raises(ServiceError) as caught:
        await _use_cases(directory).report("x")
    assert caught.value is failure


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_unreachable_device_srv_is_unavailable_with_retry_after(
    code: grpc.StatusCode,
) -> None:
    directory = DictDirectory({"device1": True})
    directory.failure = ServiceError(code, "connection refused")
    with pytest.raises(DeviceSrvUnavailable) as caught:
        await _use_cases(directory).report("device1")
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert caught.value.http_status == 503
    assert caught.value.retry_after == timedelta(seconds=7)
    assert caught.value.message == "device-srv is unavailable: connection refused"


def test_text_is_the_original_reply_byte_for_byte() -> None:
    assert report_text(DeviceReport("device1", True)) == (
        "Device active:  true\nOh and, no data for you!\n"
    )
    assert report_text(DeviceReport("device3", False)) == (
        "Device active:  false\nOh and, no data for you!\n"
    )


def test_json_always_carries_both_fields() -> None:
    assert report_json(DeviceReport("device3", False)) == {"device": "device3", "active": False}
