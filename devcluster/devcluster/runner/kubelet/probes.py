"""Probe and lifecycle-handler actions: httpGet, tcpSocket, grpc, exec (and sleep).

Each action answers (success, message) and never raises for a failing target; a named
port is looked up in the container's ports, as the kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devcluster.runner.kube import Obj

Result = tuple[bool, str]


def port_number(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container {container['name']!r} has no port named {port!r}")


async def http_get(action: Obj, container: Obj, pod_ip: str, timeout_s: float) -> Result:
    host = action.get("host") or pod_ip
    scheme = str(action.get("scheme", "HTTP")).lower()
    port = port_number(container, action["port"])
    path = action.get("path", "/")
    if not path.startswith("/"):
        path = "/" + path
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/devcluster")
    verify = scheme != "https"  # probes skip certificate checks, as the kubelet does
    url = f"{scheme}://{host}:{port}{path}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url, headers=headers, ssl=verify, allow_redirects=False) as answer,
        ):
            if 200 <= answer.status < 400:
                return True, f"HTTP {answer.status}"
            return False, f"HTTP probe failed with statuscode: {answer.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return False, f'Get "{url}": {error or type(error).__name__}'


async def tcp_socket(action: Obj, container: Obj, pod_ip: str, timeout_s: float) -> Result:
    host = action.get("host") or pod_ip
    port = port_number(container, action["port"])
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as error:
        return False, f"dial tcp {host}:{port}: {error or 'timeout'}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, "connected"


async def grpc_health(action: Obj, container: Obj, pod_ip: str, timeout_s: float) -> Result:
    port = port_number(container, action["port"])
    target = f"{pod_ip}:{port}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(
                health_pb2.HealthCheckRequest(service=action.get("service") or ""),
                timeout=timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            return False, f"rpc error: code = {error.code().name} desc = {error.details()}"
    if answer.status == health_pb2.HealthCheckResponse.SERVING:
        return True, "SERVING"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return False, f"service unhealthy (responded with {name!r})"


async def exec_command(action: Obj, env: Mapping[str, str], cwd: str, timeout_s: float) -> Result:
    command = [str(word) for word in action.get("command") or []]
    if not command:
        return False, "exec: no command"
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        return False, f"exec: {error}"
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        await process.wait()
        return False, f"command timed out after {timeout_s}s"
    text = output.decode(errors="replace").strip()[-200:]
    if process.returncode == 0:
        return True, text
    return False, f"command exited with {process.returncode}: {text}"


async def run_action(
    action: Obj,
    container: Obj,
    pod_ip: str,
    env: Mapping[str, str],
    cwd: str,
    timeout_s: float,
) -> Result:
    """One probe or lifecycle handler of any kind."""
    try:
        if "httpGet" in action:
            return await http_get(action["httpGet"], container, pod_ip, timeout_s)
        if "tcpSocket" in action:
            return await tcp_socket(action["tcpSocket"], container, pod_ip, timeout_s)
        if "grpc" in action:
            return await grpc_health(action["grpc"], container, pod_ip, timeout_s)
        if "exec" in action:
            return await exec_command(action["exec"], env, cwd, timeout_s)
        if "sleep" in action:
            await asyncio.sleep(float(action["sleep"].get("seconds", 0)))
            return True, "slept"
    except ValueError as error:
        return False, str(error)
    return False, "no action in handler"


def probe_settings(probe: Obj) -> dict[str, Any]:
    """The probe's timing with the API's defaults."""
    return {
        "initial_delay": float(probe.get("initialDelaySeconds", 0)),
        "period": float(probe.get("periodSeconds", 10)),
        "timeout": float(probe.get("timeoutSeconds", 1)),
        "success_threshold": int(probe.get("successThreshold", 1)),
        "failure_threshold": int(probe.get("failureThreshold", 3)),
    }
