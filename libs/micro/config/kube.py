"""The remote layers: ConfigMaps and Secrets selected by label, watched by Informers.

Each data key of a selected object is a file named <namespace>/<object>/<key>, parsed
by its extension. The documents are rebuilt from the Informer's current snapshot on
every change, so a removed key or a deleted object leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes.client

from micro.config.documents import ConfigDocument, parse_document
from micro.config.errors import ConfigError
from micro.config.files import expand
from micro.config.model import RemoteConfig
from micro.kube.client import KubeSetupError, kube_client
from micro.kube.informer import Informer
from micro.kube.pod import own_namespace
from micro.kube.resources import CONFIG_MAPS, SECRETS, Resource
from micro.registry.names import short_name

logger = logging.getLogger("micro.config")

# How long start() waits for the first list before the service gives up.
SYNC_TIMEOUT_S = 30.0


def default_label_selector(service: str) -> str:
    """app=<short name>: "go-micro.user-srv" -> "app=user-srv"."""
    return f"app={short_name(service)}"


def kube_sources(
    remote: RemoteConfig,
    *,
    service: str,
    env: Mapping[str, str],
    api: kubernetes.client.ApiClient | None = None,
) -> list[KubeObjectsSource]:
    """The ConfigMap layer, then the Secret layers for one service: one source per
    Secret named in `remote.secrets` (in name order; none for an empty list), or, when
    `remote.secrets` is absent, one for every labelled Secret."""
    k8s = remote.k8s
    namespace = k8s.namespace or _own_namespace()
    selector = k8s.label_selector or default_label_selector(service)
    owns_api = api is None
    if api is None:
        try:
            api = kube_client(k8s)
        except KubeSetupError as exc:
            raise ConfigError(f"remote config: {exc}") from None
    watched: list[tuple[Resource, str, bool]] = [(CONFIG_MAPS, k8s.field_selector, False)]
    if remote.secrets is None:
        watched.append((SECRETS, k8s.field_selector, True))
    else:  # by name only; an empty list reads no Secret at all
        for name in sorted(set(remote.secrets)):
            by_name = ",".join(filter(None, (f"metadata.name={name}", k8s.field_selector)))
            watched.append((SECRETS, by_name, True))
    layers = []
    for resource, field_selector, secret in watched:
        informer = Informer(
            api,
            resource,
            namespace=namespace,
            label_selector=selector,
            field_selector=field_selector,
        )
        layers.append(KubeObjectsSource(informer, env=env, secret=secret))
    if owns_api:
        layers[0].closes(api)  # ConfigHandle stops sources in reverse: this one last
    return layers


def _own_namespace() -> str:
    try:
        return own_namespace()
    except KubeSetupError as exc:
        raise ConfigError(f"remote.k8s.namespace is empty and {exc}") from None


class KubeObjectsSource:
    """One remote layer: the documents of every object one Informer holds."""

    def __init__(
        self,
        informer: Informer,
        *,
        env: Mapping[str, str],
        secret: bool,
        sync_timeout_s: float | None = None,
    ) -> None:
        self._informer = informer
        self._env = env
        self._secret = secret
        self._sync_timeout_s = sync_timeout_s
        self._unsubscribe: Callable[[], None] | None = None
        self._api_to_close: kubernetes.client.ApiClient | None = None
        # Parsed documents by object key, valid while its resourceVersion is unchanged.
        self._parsed: dict[str, tuple[str, list[ConfigDocument]]] = {}

    def closes(self, api: kubernetes.client.ApiClient) -> None:
        """Close `api` when this source stops (it was built for the config alone)."""
        self._api_to_close = api

    async def start(self, on_change: Callable[[], None]) -> None:
        self._unsubscribe = self._informer.subscribe(lambda _events: on_change())
        await self._informer.start()
        timeout = SYNC_TIMEOUT_S if self._sync_timeout_s is None else self._sync_timeout_s
        if not await self._informer.wait_synced(timeout):
            reason = self._informer.last_error or "no answer"
            raise ConfigError(
                f"remote config: cannot list {self._informer.resource.plural} "
                f"in namespace {self._informer.namespace!r} "
                f"with labels {self._informer.label_selector!r}: {reason}"
            )

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._informer.stop()
        api, self._api_to_close = self._api_to_close, None
        if api is not None:
            api.close()  # type: ignore[no-untyped-call]

    def documents(self) -> list[ConfigDocument]:
        snapshot = self._informer.snapshot()
        documents: list[ConfigDocument] = []
        parsed: dict[str, tuple[str, list[ConfigDocument]]] = {}
        for key in sorted(snapshot):
            obj = snapshot[key]
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            cached = self._parsed.get(key)
            if cached is not None and cached[0] == version and version:
                object_documents = cached[1]
            else:
                object_documents = self._parse(obj)
            parsed[key] = (version, object_documents)
            documents.extend(object_documents)
        self._parsed = parsed  # forget deleted objects
        return documents

    def _parse(self, obj: Mapping[str, Any]) -> list[ConfigDocument]:
        metadata = obj.get("metadata") or {}
        prefix = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        data = obj.get("data") or {}
        documents = []
        for key in sorted(data):
            name = f"{prefix}/{key}"
            text = self._decode(name, data[key]) if self._secret else str(data[key])
            document = parse_document(name, text, secret=self._secret)
            if document is not None:
                documents.append(expand(document, self._env))
        return documents

    @staticmethod
    def _decode(name: str, value: Any) -> str:
        try:
            return base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{name}: not base64-encoded UTF-8 text") from None
