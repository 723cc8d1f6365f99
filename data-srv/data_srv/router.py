"""The HTTP face of data-srv: GET /data/{device}, as JSON or the original plain text."""

from __future__ import annotations

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from data_srv.negotiation import ReplyFormat, reply_format
from data_srv.render import report_json, report_text
from data_srv.usecases import DeviceDataUseCases


def build_router(devices: DeviceDataUseCases) -> APIRouter:
    router = APIRouter()

    @router.get("/data/{device}", response_model=None)
    async def device_data(device: str, accept: str | None = Header(default=None)) -> Response:
        """Whether the device is active; failures reach the framework's error body (with
        Retry-After when device-srv is unavailable)."""
        report = await devices.report(device)
        # The body depends on Accept, so shared caches must key on it.
        vary = {"Vary": "Accept"}
        if reply_format(accept) is ReplyFormat.TEXT:
            return PlainTextResponse(report_text(report), headers=vary)
        return JSONResponse(report_json(report), headers=vary)

    return router
