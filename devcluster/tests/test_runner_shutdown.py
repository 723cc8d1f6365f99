"""SIGTERM to `python -m devcluster run` stops every pod process and the API server."""

from __future__ import annotations

import json
import pathlib

from devcluster.runner.testing import (
    alive,
    children,
    deployment,
    pod_pids,
    ready_pods,
    running_node,
    wait_for,
)


def test_sigterm_leaves_no_process_behind(
    tmp_path: pathlib.Path, runner_images: pathlib.Path
) -> None:
    manifests = "\n---\n".join(
        [
            json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            json.dumps(deployment("web", "shop", replicas=2, env={"DRAIN_S": "0.2"})),
        ]
    )
    with running_node(tmp_path, manifests, images=runner_images) as node:
        pods = wait_for(
            "2 ready pods", lambda: len(p := ready_pods(node.core, "shop", "app=web")) == 2 and p
        )
        pids = pod_pids(pods)
        helpers = children(node.process.pid)  # the API server and the pod processes
        assert len(pids) == 2
        assert set(pids) <= set(helpers)
        assert len(helpers) >= 3
        assert all(alive(pid) for pid in helpers)
        assert node.stop() == 0
        assert [pid for pid in [*helpers, node.process.pid] if alive(pid)] == []
    assert "devcluster: stopped" in node.text()
