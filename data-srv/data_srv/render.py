"""The two shapes of a device report: JSON, and the original example's plain text."""

from __future__ import annotations

from typing import Any

from data_srv.usecases import DeviceReport


def report_json(report: DeviceReport) -> dict[str, Any]:
    return {"device": report.device, "active": report.active}


def report_text(report: DeviceReport) -> str:
    # Go's fmt.Println("Device active: ", active) puts a space between its operands,
    # hence the two spaces of the original reply.
    active = "true" if report.active else "false"
    return f"Device active:  {active}\nOh and, no data for you!\n"
