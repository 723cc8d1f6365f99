"""The Kubernetes API as the framework uses it: client set-up, own Pod, one Informer."""

from micro.kube.backoff import Backoff
from micro.kube.client import KubeSetupError, kube_client, service_account_dir
from micro.kube.informer import Informer, InformerEvent, Listener, object_key
from micro.kube.paths import container_path
from micro.kube.pod import own_namespace, own_pod
from micro.kube.resources import CONFIG_MAPS, ENDPOINT_SLICES, PODS, SECRETS, Resource
from micro.kube.rest import JsonObject

__all__ = [
    "CONFIG_MAPS",
    "ENDPOINT_SLICES",
    "PODS",
    "SECRETS",
    "Backoff",
    "Informer",
    "InformerEvent",
    "JsonObject",
    "KubeSetupError",
    "Listener",
    "Resource",
    "container_path",
    "kube_client",
    "object_key",
    "own_namespace",
    "own_pod",
    "service_account_dir",
]
