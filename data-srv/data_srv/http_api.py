"""The HTTP face of data-srv: GET /data/{device}, as JSON or the original plain text."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from data_srv.negotiation import ReplyFormat, reply_format
from data_srv.render import report_json, report_text
from data_srv.usecases import DeviceDataUseCases, DeviceReport
from micro.transport.openapi import error_response, error_responses, label_value_name

# device-srv's rule for names (device_srv.domain), declared only: device-srv judges them,
# so the rule runs in one place. tests/test_openapi_contract.py checks it against it.
DEVICE_NAME = label_value_name("device name")
REPORT_JSON: dict[str, Any] = {
    "title": "DeviceReport",
    "type": "object",
    "properties": {"device": {"type": "string"}, "active": {"type": "boolean"}},
    "required": ["device", "active"],
    "additionalProperties": False,
}
EXAMPLE = DeviceReport("device1", active=True)
REPORT: dict[str, Any] = {
    "description": "Whether the device is active: JSON, or the original plain text when "
    "Accept ranks text/plain above application/json",
    "content": {
        ReplyFormat.JSON.value: {"schema": REPORT_JSON, "example": report_json(EXAMPLE)},
        ReplyFormat.TEXT.value: {"schema": {"type": "string"}, "example": report_text(EXAMPLE)},
    },
}


def build_router(devices: DeviceDataUseCases) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/data/{device}",
        response_model=None,
        responses={
            200: REPORT,
            **error_responses(404),
            503: error_response(503, "device-srv is unavailable: retry after Retry-After"),
        },
    )
    async def device_data(
        device: Annotated[str, Path(json_schema_extra=DEVICE_NAME)],
        # Negotiation is declared by the 200's media types, not as a parameter.
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Whether the device is active; failures reach the framework's error body (with
        Retry-After when device-srv is unavailable)."""
        report = await devices.report(device)
        # The body depends on Accept, so shared caches must key on it.
        vary = {"Vary": "Accept"}
        if reply_format(accept) is ReplyFormat.TEXT:
            return PlainTextResponse(report_text(report), headers=vary)
        return JSONResponse(report_json(report), headers=vary)

    return router
