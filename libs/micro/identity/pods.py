"""Is the caller's pod still there? A token outlives its pod until it expires; this
refuses it once the pod is gone.

Decision: watch the pods of the own namespace rather than ask a TokenReview at first
sight. A TokenReview needs a cluster-wide grant (system:auth-delegator) for every
service and one API call per new token, on the call path; the pod watch needs only the
list/watch of pods the services' Roles already grant, costs a dict lookup per call, and
refuses a deleted pod's token within the watch's latency rather than at its next token.
One watch covers every pod of the namespace, not one per allowed account: identity.allow
is live, and a single watch needs no restart when it changes.
The watch holds the uids of the pods that exist; a deleted pod's uid is refused from its
DELETED event on. A uid the watch has not seen (a caller that started after the last
event, or a pod in another namespace) is looked up once with a GET of the pod by name;
the answer is kept for `confirm_ttl_s`, so a fresh caller is never refused and a flood
of calls makes one request. A pod that is terminating still counts until it is deleted,
as kube-apiserver's TokenReview does. When the API cannot answer the GET, the call is
let through with a warning: the token is still signed, unexpired and bound to a pod
that the watch never saw deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from micro.identity.principal import CallerIdentity
from micro.identity.refusals import IdentityRefusal
from micro.kube import PODS, Backoff, Informer, InformerEvent
from micro.kube.rest import get_json

HTTP_NOT_FOUND = 404
MAX_REMEMBERED = 4096  # deleted uids and GET answers kept, oldest dropped first

_log = logging.getLogger("micro.identity.pods")
K = TypeVar("K")
V = TypeVar("V")


class PodLiveness:
    """Refuses tokens whose pod is gone (see the module doc). `start()`, `check()`,
    `stop()`, on one event loop."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        *,
        confirm_ttl_s: float = 30.0,
        backoff: Backoff | None = None,
        timeout: tuple[float, float] = (3.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._informer = Informer(api, PODS, namespace=namespace, backoff=backoff)
        self._confirm_ttl_s = confirm_ttl_s
        self._timeout = timeout
        self._clock = clock
        self._live: dict[str, str] = {}  # uid -> "<namespace>/<name>", from the watch
        self._gone: OrderedDict[str, None] = OrderedDict()  # uids the watch saw deleted
        # (namespace, name, uid) -> (exists, answered at), from a GET
        self._answers: OrderedDict[tuple[str, str, str], tuple[bool, float]] = OrderedDict()
        self._pending: dict[tuple[str, str, str], asyncio.Future[bool]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self.lookups = 0  # GETs of a pod, for tests and diagnostics

    async def start(self) -> None:
        self._unsubscribe = self._informer.subscribe(self._on_events)
        await self._informer.start()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self._informer.stop()

    async def check(self, caller: CallerIdentity) -> None:
        """Returns when the caller's pod exists; IdentityRefusal "pod_gone" otherwise."""
        uid = caller.pod_uid
        if uid in self._live:
            return
        if uid not in self._gone and await self._exists(caller):
            return
        raise IdentityRefusal(
            "pod_gone",
            f"pod {caller.namespace}/{caller.pod_name} ({uid}) is gone",
            caller=caller.principal,
        )

    def _on_events(self, events: Sequence[InformerEvent]) -> None:
        for event in events:
            uid = str((event.object.get("metadata") or {}).get("uid") or "")
            if not uid:
                continue
            if event.type == "DELETED":
                self._live.pop(uid, None)
                _remember(self._gone, uid, None)
            else:
                self._live[uid] = event.key

    async def _exists(self, caller: CallerIdentity) -> bool:
        key = (caller.namespace, caller.pod_name, caller.pod_uid)
        answer = self._answers.get(key)
        if answer is not None and self._clock() - answer[1] < self._confirm_ttl_s:
            return answer[0]
        pending = self._pending.get(key)
        if pending is None:  # one GET per pod at a time, whatever the number of calls
            pending = asyncio.ensure_future(self._look_up(key))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _look_up(self, key: tuple[str, str, str]) -> bool:
        namespace, name, uid = key
        self.lookups += 1
        try:
            pod = await asyncio.to_thread(
                get_json, self._api, f"{PODS.path(namespace)}/{name}", [], self._timeout
            )
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                return self._unanswered(key, f"HTTP {error.status} {error.reason}")
            exists = False
        except Exception as error:
            return self._unanswered(key, str(error) or type(error).__name__)
        else:
            exists = str((pod.get("metadata") or {}).get("uid") or "") == uid
        _remember(self._answers, key, (exists, self._clock()))
        return exists

    def _unanswered(self, key: tuple[str, str, str], reason: str) -> bool:
        """Let the caller through, and keep that answer as long as a real one, so an API
        outage costs one slow GET and one warning per pod, not one per call."""
        namespace, name, _ = key
        _log.warning(
            "cannot look up the caller's pod %s/%s (%s): letting it call", namespace, name, reason
        )
        _remember(self._answers, key, (True, self._clock()))
        return True


def _remember(table: OrderedDict[K, V], key: K, value: V) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_REMEMBERED:
        table.popitem(last=False)
