"""What each service asked of the Kubernetes API, read from the devcluster's audit log.

A service calls under its ServiceAccount's pod-bound token, so the log names the
service (`system:serviceaccount:<namespace>:<service>`) and the calling pod (the
token's `authentication.kubernetes.io/pod-name`).
"""

from __future__ import annotations

import collections
import urllib.parse
from dataclasses import dataclass

from devcluster.apiserver.audit import Event
from devcluster.apiserver.auth import POD_NAME_KEY


@dataclass(frozen=True)
class Call:
    verb: str
    resource: str  # "pods", or "pods/status" for a subresource
    name: str  # the object named by the path, or by fieldSelector=metadata.name=
    label_selector: str
    code: int
    pod: str  # the calling pod


def _call(event: Event) -> Call:
    ref = event.get("objectRef", {})
    resource = ref.get("resource", event["requestURI"])
    if ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(event["requestURI"]).query))
    pods = event["user"].get("extra", {}).get(POD_NAME_KEY, [""])
    return Call(
        verb=event["verb"],
        resource=resource,
        name=ref.get("name", ""),
        label_selector=query.get("labelSelector", ""),
        code=event["responseStatus"]["code"],
        pod=pods[0],
    )


def calls_by_service(events: list[Event], namespace: str) -> dict[str, list[Call]]:
    """One Call per request of each ServiceAccount of `namespace`: its ResponseComplete
    event, or its ResponseStarted one while it is still open (a watch)."""
    prefix = f"system:serviceaccount:{namespace}:"
    last: dict[str, Event] = {}  # by auditID: ResponseComplete comes after ResponseStarted
    for event in events:
        if event["user"].get("username", "").startswith(prefix):
            last[event["auditID"]] = event
    calls: dict[str, list[Call]] = collections.defaultdict(list)
    for event in last.values():
        calls[event["user"]["username"].removeprefix(prefix)].append(_call(event))
    return calls


def self_registered(calls: list[Call]) -> set[str]:
    """The pods that patched their own Pod object (the registry's registration)."""
    return {
        c.name
        for c in calls
        if (c.verb, c.resource, c.code) == ("patch", "pods", 200) and c.name == c.pod
    }


def calls_table(calls: dict[str, list[Call]]) -> str:
    """service, verb, resource and the number of calls, one line per kind of call."""
    lines = [f"{'service':<12} {'verb':<7} {'resource':<16} calls"]
    for service in sorted(calls):
        counted = collections.Counter((c.verb, c.resource) for c in calls[service])
        for (verb, resource), count in sorted(counted.items()):
            lines.append(f"{service:<12} {verb:<7} {resource:<16} {count}")
    return "\n".join(lines)
