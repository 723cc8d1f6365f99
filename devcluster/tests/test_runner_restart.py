"""The user's story of a broken state: a ConfigMap patched to invalid YAML while the
runner runs breaks the pods that read it, the runner says so, and the next run's apply
restores the ConfigMap from its manifest, so everything comes back."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from devcluster.runner.testing import RunningNode, deployment, running_node, wait_for

NAMESPACE = "story"
GOOD = "devices:\n  - device1\n"
BROKEN = "devices: [device1\n"


def manifests() -> str:
    settings = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": NAMESPACE},
        "data": {"config.yaml": GOOD},
    }
    mount = {"volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}
    web = deployment(
        "web",
        NAMESPACE,
        replicas=1,
        env={"CONFIG_FILE": "/etc/app/config.yaml"},
        extra_container=mount,
        pod_spec={"volumes": [{"name": "config", "configMap": {"name": "settings"}}]},
    )
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return "\n---\n".join(json.dumps(m) for m in (namespace, settings, web))


def wait_available(node: RunningNode) -> None:
    wait_for(
        "the deployment to be available",
        lambda: "devcluster: all 1 deployments available" in node.text(),
        timeout_s=60,
    )


def test_a_configmap_broken_between_runs_is_restored_by_the_next_run(
    tmp_path: pathlib.Path, runner_images: pathlib.Path
) -> None:
    with running_node(tmp_path, manifests(), images=runner_images) as node:
        wait_available(node)
        node.core.patch_namespaced_config_map(
            "settings", NAMESPACE, {"data": {"config.yaml": BROKEN}}
        )
        [pod] = node.core.list_namespaced_pod(NAMESPACE).items
        node.core.delete_namespaced_pod(pod.metadata.name, NAMESPACE)

        def crash_report() -> str | None:
            text = node.text()
            report = text.split(f"deployment {NAMESPACE}/web not available", 1)
            return report[1] if len(report) > 1 and "not valid YAML" in report[1] else None

        report = wait_for("the crash report", crash_report, timeout_s=60)
        assert report.split("\n", 1)[0].startswith(" (0 of 1 available): pod web-"), report
        assert ": crashed, last exit code 1 (Error)" in report
    with running_node(tmp_path, manifests(), images=runner_images) as node:
        assert "configmap/settings configured" in node.text()
        settings: Any = node.core.read_namespaced_config_map("settings", NAMESPACE)
        assert settings.data == {"config.yaml": GOOD}
        wait_available(node)
