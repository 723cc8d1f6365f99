"""load_config: the layers of one service's configuration, in one documented order.

model defaults < local files < ConfigMaps < Secrets < environment overrides
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from micro.config.documents import ConfigDocument
from micro.config.environment import environment_document
from micro.config.files import read_config_dir
from micro.config.handle import ConfigHandle, RemoteSource
from micro.config.merge import merge_documents
from micro.config.model import RemoteConfig, ServiceConfig
from micro.config.validation import validate

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

C = TypeVar("C", bound=ServiceConfig)

CONFIG_DIR_VARIABLE = "MICRO_CONFIG_DIR"


def load_config(
    model: type[C],
    *,
    service: str,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    api: ApiClient | None = None,
) -> ConfigHandle[C]:
    """Read the local layers and return the service's ConfigHandle.

    config_dir defaults to $MICRO_CONFIG_DIR (no local files when neither is given).
    Without remote sources (remote.type "none") the config is validated here and a
    ConfigError is raised when it is invalid. With remote.type "k8s" the ConfigMaps and
    Secrets are listed by `await handle.start()`, which validates the whole and raises
    ConfigError in the same way; `api` is then the Kubernetes client to use (else one
    is built from remote.k8s).
    """
    env = dict(os.environ) if env is None else env
    if config_dir is None and env.get(CONFIG_DIR_VARIABLE):
        config_dir = Path(env[CONFIG_DIR_VARIABLE])
    local = read_config_dir(config_dir, env) if config_dir is not None else []
    environment = environment_document(env)
    remote_config = bootstrap_remote([*local, environment])
    remote: Sequence[RemoteSource] = ()
    if remote_config.type == "k8s":
        from micro.config.kube import kube_sources  # the kubernetes client only when used

        remote = kube_sources(remote_config, service=service, env=env, api=api)
    handle = ConfigHandle(
        model, service=service, local=local, environment=environment, remote=remote
    )
    if not remote:
        handle.load_now()
    return handle


def bootstrap_remote(documents: Sequence[ConfigDocument]) -> RemoteConfig:
    """The `remote` section of the local layers: where the rest of the config lives."""
    merged = merge_documents(documents)
    return validate(RemoteConfig, merged.get("remote") or {}, documents, prefix=("remote",))
