"""ConfigMaps and Secrets as config layers, watched through the devcluster API over HTTPS."""

from __future__ import annotations

import base64
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from prometheus_client import REGISTRY

from devcluster.testing import RunningDevCluster, running_devcluster
from micro.config import ConfigError, ConfigHandle, load_config
from micro.config.model import Section, ServiceConfig
from micro.config.reload import Reload
from micro.testing import waiting

WAIT_S = 15.0
_numbers = itertools.count(1)


class Greeting(Section):
    reload_policy = Reload.LIVE  # the tests' observers follow it

    text: str = "hello"
    repeat: int = 1


class Layers(Section):
    """One field per layer boundary: each is set by every layer up to the one that wins."""

    by_env: str = "default"
    by_secret: str = "default"
    by_configmap: str = "default"
    by_file: str = "default"
    by_default: str = "default"


class GreeterConfig(ServiceConfig):
    greeting: Greeting = Greeting()
    layers: Layers = Layers()


# fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("devcluster")) as running:
        yield running


@pytest.fixture
def api(cluster: RunningDevCluster) -> Iterator[kubernetes.client.ApiClient]:
    client = cluster.api_client()
    yield client
    client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


class Scenario:
    """One test's namespace, service name and bootstrap folder."""

    def __init__(self, core: kubernetes.client.CoreV1Api, tmp_path: Path) -> None:
        number = next(_numbers)
        self.core = core
        self.namespace = f"config-test-{number}"
        self.short_name = f"greeter-{number}"
        self.service = f"go-micro.{self.short_name}"
        self.config_dir = tmp_path / "configs"
        self.config_dir.mkdir()
        core.create_namespace(
            kubernetes.client.V1Namespace(
                metadata=kubernetes.client.V1ObjectMeta(name=self.namespace)
            )
        )
        self.bootstrap()

    def bootstrap(self, **k8s: str) -> None:
        remote = {"remote": {"type": "k8s", "k8s": {"namespace": self.namespace, **k8s}}}
        (self.config_dir / "remote.yaml").write_text(yaml.safe_dump(remote))

    def load(
        self, api: kubernetes.client.ApiClient, env: dict[str, str] | None = None
    ) -> ConfigHandle[GreeterConfig]:
        return load_config(
            GreeterConfig,
            service=self.service,
            config_dir=self.config_dir,
            env=env or {},
            api=api,
        )

    def metadata(self, name: str, labels: dict[str, str] | None = None) -> Any:
        return kubernetes.client.V1ObjectMeta(
            name=name,
            namespace=self.namespace,
            labels={"app": self.short_name} if labels is None else labels,
        )

    def put_configmap(
        self, data: dict[str, str], name: str = "", labels: dict[str, str] | None = None
    ) -> None:
        """Create the ConfigMap, or replace it whole (so removed keys disappear)."""
        name = name or self.short_name
        body = kubernetes.client.V1ConfigMap(metadata=self.metadata(name, labels), data=data)
        try:
            self.core.read_namespaced_config_map(name, self.namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(self.namespace, body)
        else:
            self.core.replace_namespaced_config_map(name, self.namespace, body)

    def put_secret(self, data: dict[str, str], name: str = "") -> None:
        name = name or f"{self.short_name}-keys"
        encoded: dict[str, bytes | str] = {
            key: base64.b64encode(value.encode()).decode() for key, value in data.items()
        }
        body = kubernetes.client.V1Secret(metadata=self.metadata(name), data=encoded, type="Opaque")
        try:
            self.core.read_namespaced_secret(name, self.namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_secret(self.namespace, body)
        else:
            self.core.replace_namespaced_secret(name, self.namespace, body)

    def metric(self, name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"service": self.service})


@pytest.fixture
def scenario(core: kubernetes.client.CoreV1Api, tmp_path: Path) -> Scenario:
    return Scenario(core, tmp_path)


@pytest.fixture
async def started(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> AsyncIterator[ConfigHandle[GreeterConfig]]:
    """A handle started on a ConfigMap that sets greeting.text to "from-configmap"."""
    scenario.put_configmap({"config.yaml": "greeting:\n  text: from-configmap\n"})
    handle = scenario.load(api)
    await handle.start()
    yield handle
    await handle.stop()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until condition() holds; the config arrives asynchronously."""
    await waiting.eventually(condition, what, limit_s=WAIT_S)


def texts(handle: ConfigHandle[GreeterConfig]) -> list[str]:
    """Every greeting.text the handle's observer is called with, in order."""
    seen: list[str] = []
    handle.subscribe(lambda c: c.greeting.text, seen.append)
    return seen


# tests ---------------------------------------------------------------------------------


async def test_starts_from_the_configmap_and_logs_each_file(
    scenario: Scenario, api: kubernetes.client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    scenario.put_configmap({"config.yaml": "greeting:\n  text: from-configmap\n  repeat: 3\n"})
    caplog.set_level(logging.DEBUG, logger="micro.config")
    handle = scenario.load(api)
    with pytest.raises(RuntimeError, match="await start"):
        _ = handle.current
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(text="from-configmap", repeat=3)
        assert handle.last_error is None
        assert scenario.metric("micro_config_valid") == 1
        loaded = [r.getMessage() for r in caplog.records if "config loaded" in r.getMessage()]
        assert loaded == [
            "config loaded: remote.yaml format: yaml",
            f"config loaded: {scenario.namespace}/{scenario.short_name}/config.yaml format: yaml",
        ]
    finally:
        await handle.stop()


async def test_hot_reload_calls_the_observer_with_the_new_value(
    scenario: Scenario, started: ConfigHandle[GreeterConfig]
) -> None:
    seen = texts(started)
    repeats: list[int] = []
    started.subscribe(lambda c: c.greeting.repeat, repeats.append)
    scenario.put_configmap({"config.yaml": "greeting:\n  text: reloaded\n"})
    await eventually(lambda: seen == ["reloaded"], "the observer call")
    assert started.current.greeting.text == "reloaded"
    assert repeats == []  # its part did not change


async def test_a_restart_only_change_is_taken_and_named_in_a_warning(
    scenario: Scenario, started: ConfigHandle[GreeterConfig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="micro.config")
    seen = texts(started)
    started.subscribe(lambda c: c.log, lambda _log: None)  # as an App's logging does

    def warnings() -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == "micro.config" and record.levelno == logging.WARNING
        ]

    scenario.put_configmap(
        {
            "config.yaml": "greeting:\n  text: live\nregistry:\n  prefix: kratos\n"
            "tracing:\n  sample_ratio: 0.5\nlog:\n  level: DEBUG\n"
        }
    )
    await eventually(lambda: seen == ["live"], "the update")
    assert started.current.registry.prefix == "kratos"
    assert warnings() == [
        "registry.prefix changed at run time but takes effect only after a restart",
        "tracing.sample_ratio changed at run time but takes effect only after a restart",
    ]

    # From a Secret too, naming the field and never the value.
    caplog.clear()
    scenario.put_secret({"keys.yaml": "remote:\n  k8s:\n    field_selector: s3cret-value\n"})
    await eventually(lambda: bool(warnings()), "the warning for the Secret's change")
    assert warnings() == [
        "remote.k8s.field_selector changed at run time but takes effect only after a restart"
    ]
    assert all("s3cret" not in record.getMessage() for record in caplog.records)


async def test_removed_key_leaves_the_effective_config(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    scenario.put_configmap(
        {"a.yaml": "greeting:\n  text: from-a\n", "b.yaml": "greeting:\n  repeat: 5\n"}
    )
    handle = scenario.load(api)
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(text="from-a", repeat=5)
        scenario.put_configmap({"a.yaml": "greeting:\n  text: from-a\n"})
        await eventually(lambda: handle.current.greeting.repeat == 1, "b.yaml to drop out")
        assert handle.current.greeting == Greeting(text="from-a", repeat=1)
    finally:
        await handle.stop()


async def test_deleted_configmap_leaves_the_effective_config(
    scenario: Scenario, started: ConfigHandle[GreeterConfig]
) -> None:
    seen = texts(started)
    scenario.core.delete_namespaced_config_map(scenario.short_name, scenario.namespace)
    await eventually(lambda: seen == ["hello"], "the default text to return")
    assert started.current.greeting == Greeting()


async def test_invalid_yaml_on_reload_keeps_the_last_good_config(
    scenario: Scenario, started: ConfigHandle[GreeterConfig]
) -> None:
    errors_before = scenario.metric("micro_config_reload_errors_total") or 0.0
    seen = texts(started)
    scenario.put_configmap({"config.yaml": "greeting:\n  text: [unclosed\n"})
    await eventually(lambda: started.last_error is not None, "the rejected update")
    error = started.last_error or ""
    assert f"{scenario.namespace}/{scenario.short_name}/config.yaml: invalid yaml" in error
    assert started.current.greeting.text == "from-configmap"
    assert scenario.metric("micro_config_valid") == 0
    assert scenario.metric("micro_config_reload_errors_total") == errors_before + 1
    assert seen == []

    scenario.put_configmap({"config.yaml": "greeting:\n  text: fixed\n"})
    await eventually(lambda: seen == ["fixed"], "the good update")
    assert started.last_error is None
    assert scenario.metric("micro_config_valid") == 1


async def test_invalid_value_on_reload_names_field_and_file_and_is_logged_once(
    scenario: Scenario, started: ConfigHandle[GreeterConfig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="micro.config")
    bad = {"config.yaml": "greeting:\n  text: from-configmap\n  repeat: lots\n"}
    scenario.put_configmap(bad)
    await eventually(lambda: started.last_error is not None, "the rejected update")
    file = f"{scenario.namespace}/{scenario.short_name}/config.yaml"
    assert f"greeting.repeat (from {file})" in (started.last_error or "")
    # Another selected object changes; the same error stands: no second log line or count.
    errors = scenario.metric("micro_config_reload_errors_total")
    extra = f"{scenario.short_name}-extra"
    scenario.put_configmap({"other.yaml": "log:\n  level: INFO\n"}, name=extra)
    parsed = f"config loaded: {scenario.namespace}/{extra}/other.yaml"
    await eventually(
        lambda: any(parsed in record.getMessage() for record in caplog.records),
        "the recompute with the extra ConfigMap",
    )
    rejected = [r for r in caplog.records if "update rejected" in r.getMessage()]
    assert len(rejected) == 1
    assert scenario.metric("micro_config_reload_errors_total") == errors
    assert started.current.greeting == Greeting(text="from-configmap", repeat=1)

    scenario.put_configmap({"config.yaml": "greeting:\n  repeat: 4\n"})
    await eventually(lambda: started.current.greeting.repeat == 4, "the good update")
    assert started.last_error is None


async def test_invalid_at_start_raises_config_error(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    scenario.put_configmap({"config.yaml": "server:\n  grpc:\n    timeout: soon\n"})
    handle = scenario.load(api)
    with pytest.raises(ConfigError, match=r"server\.grpc\.timeout \(from config-test-\d+/"):
        await handle.start()
    await handle.stop()


async def test_secret_change_reloads_without_logging_its_values(
    scenario: Scenario, started: ConfigHandle[GreeterConfig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = texts(started)
    scenario.put_secret({"keys.yaml": "greeting:\n  text: s3cret-one\n"})
    await eventually(lambda: seen == ["s3cret-one"], "the secret's value")
    scenario.put_secret({"keys.yaml": "greeting:\n  text: s3cret-two\n"})
    await eventually(lambda: seen == ["s3cret-one", "s3cret-two"], "the rotated value")
    scenario.put_secret({"keys.yaml": "greeting:\n  repeat: s3cret-bad\n"})
    await eventually(lambda: started.last_error is not None, "the rejected secret")
    assert "greeting.repeat (from" in (started.last_error or "")
    assert "s3cret" not in (started.last_error or "")
    assert all("s3cret" not in record.getMessage() for record in caplog.records)
    assert started.current.greeting.text == "s3cret-two"


async def test_each_layer_beats_the_one_before(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    def layer(*fields: str, value: str) -> str:
        return yaml.safe_dump({"layers": {f"by_{field}": value for field in fields}})

    (scenario.config_dir / "config.yaml").write_text(
        layer("env", "secret", "configmap", "file", value="file")
    )
    scenario.put_configmap({"config.yaml": layer("env", "secret", "configmap", value="cm")})
    scenario.put_secret({"layers.yaml": layer("env", "secret", value="secret")})
    handle = scenario.load(api, env={"MICRO__LAYERS__BY_ENV": "env"})
    await handle.start()
    try:
        assert handle.current.layers == Layers(
            by_env="env",
            by_secret="secret",
            by_configmap="cm",
            by_file="file",
            by_default="default",
        )
    finally:
        await handle.stop()


async def test_placeholders_in_configmap_values(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    scenario.put_configmap({"config.yaml": "greeting:\n  text: ${GREETING:hi}-${WHO}\n"})
    handle = scenario.load(api, env={"WHO": "there"})
    await handle.start()
    try:
        assert handle.current.greeting.text == "hi-there"
    finally:
        await handle.stop()


async def test_unknown_extension_is_skipped_with_a_warning(
    scenario: Scenario, api: kubernetes.client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    scenario.put_configmap(
        {"config.yaml": "greeting:\n  repeat: 2\n", "config.toml": "greeting = 'x'"}
    )
    caplog.set_level(logging.WARNING, logger="micro.config")
    handle = scenario.load(api)
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(repeat=2)
        assert handle.last_error is None
        warning = f"{scenario.namespace}/{scenario.short_name}/config.toml: unknown extension"
        assert any(warning in record.getMessage() for record in caplog.records)
    finally:
        await handle.stop()


async def test_only_labelled_objects_count_and_the_selector_is_configurable(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    scenario.put_configmap({"config.yaml": "greeting:\n  repeat: 2\n"})
    scenario.put_configmap(
        {"config.yaml": "greeting:\n  text: tier-a\n"}, name="tiered", labels={"tier": "a"}
    )
    handle = scenario.load(api)
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(repeat=2)
    finally:
        await handle.stop()
    scenario.bootstrap(label_selector="tier=a")
    handle = scenario.load(api)
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(text="tier-a")
    finally:
        await handle.stop()


async def test_survives_an_api_restart_and_relists_after_410(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_devcluster(tmp_path / "devcluster") as own_cluster:
        client = own_cluster.api_client()
        try:
            scenario = Scenario(kubernetes.client.CoreV1Api(client), tmp_path)
            scenario.put_configmap({"config.yaml": "greeting:\n  text: before\n"})
            handle = scenario.load(client)
            await handle.start()
            try:
                seen = texts(handle)
                # Changes the watch never delivers (not selected) move the resourceVersion
                # on, so after the restart the watch resumes from a version the new
                # server no longer holds: 410, and the Informer lists again.
                for index in range(3):
                    scenario.put_configmap(
                        {"x.yaml": f"n: {index}\n"},
                        name=f"other-{index}",
                        labels={"app": "someone-else"},
                    )
                caplog.set_level(logging.INFO, logger="micro.kube")
                own_cluster.restart()
                scenario.put_configmap({"config.yaml": "greeting:\n  text: after\n"})
                await eventually(lambda: seen == ["after"], "the update after the restart")
                assert handle.last_error is None
                assert any("410" in record.getMessage() for record in caplog.records)
            finally:
                await handle.stop()
        finally:
            client.close()  # type: ignore[no-untyped-call]


async def test_named_secrets_are_the_only_secrets_read(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    keys = f"{scenario.short_name}-keys"
    scenario.put_secret({"a.yaml": "greeting:\n  text: named\n"}, name=keys)
    scenario.put_secret({"b.yaml": "greeting:\n  repeat: 9\n"}, name="not-listed")
    remote = yaml.safe_load((scenario.config_dir / "remote.yaml").read_text())
    remote["remote"]["secrets"] = [keys]
    (scenario.config_dir / "remote.yaml").write_text(yaml.safe_dump(remote))
    handle = scenario.load(api)
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(text="named", repeat=1)
    finally:
        await handle.stop()


def restricted_account(
    scenario: Scenario, cluster: RunningDevCluster, *rules: kubernetes.client.V1PolicyRule
) -> str:
    """A ServiceAccount bound to a Role granting exactly `rules`; returns its token."""
    account = "greeter"
    scenario.core.create_namespaced_service_account(
        scenario.namespace, kubernetes.client.V1ServiceAccount(metadata=scenario.metadata(account))
    )
    with cluster.api_client() as admin:
        rbac = kubernetes.client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            scenario.namespace,
            kubernetes.client.V1Role(metadata=scenario.metadata(account), rules=list(rules)),
        )
        rbac.create_namespaced_role_binding(
            scenario.namespace,
            kubernetes.client.V1RoleBinding(
                metadata=scenario.metadata(account),
                role_ref=kubernetes.client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=account
                ),
                subjects=[
                    kubernetes.client.RbacV1Subject(
                        kind="ServiceAccount", name=account, namespace=scenario.namespace
                    )
                ],
            ),
        )
    return cluster.service_account_token(scenario.namespace, account)


CONFIGMAPS_ONLY = kubernetes.client.V1PolicyRule(
    api_groups=[""], resources=["configmaps"], verbs=["list", "watch"]
)


def set_remote_secrets(scenario: Scenario, secrets: list[str]) -> None:
    remote = yaml.safe_load((scenario.config_dir / "remote.yaml").read_text())
    remote["remote"]["secrets"] = secrets
    (scenario.config_dir / "remote.yaml").write_text(yaml.safe_dump(remote))


async def test_named_secrets_need_only_resource_name_grants(
    scenario: Scenario, cluster: RunningDevCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Role that grants Secrets by resourceNames allows list/watch only by name."""
    monkeypatch.setattr("micro.config.kube.SYNC_TIMEOUT_S", 3.0)
    keys = f"{scenario.short_name}-keys"
    token = restricted_account(
        scenario,
        cluster,
        CONFIGMAPS_ONLY,
        kubernetes.client.V1PolicyRule(
            api_groups=[""],
            resources=["secrets"],
            resource_names=[keys, "absent-is-fine"],
            verbs=["get", "list", "watch"],
        ),
    )
    scenario.put_secret({"keys.yaml": "greeting:\n  text: by-name\n"}, name=keys)
    set_remote_secrets(scenario, [keys, "absent-is-fine"])

    restricted = cluster.api_client(token)
    handle = scenario.load(restricted)
    await handle.start()
    try:
        seen = texts(handle)
        assert handle.current.greeting.text == "by-name"
        scenario.put_secret({"keys.yaml": "greeting:\n  text: rotated\n"}, name=keys)
        await eventually(lambda: seen == ["rotated"], "the rotated Secret")
    finally:
        await handle.stop()
        restricted.close()  # type: ignore[no-untyped-call]


async def test_an_empty_secrets_list_reads_no_secret_and_needs_no_grant(
    scenario: Scenario, cluster: RunningDevCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`remote.secrets: []` makes no Secret request: a Role without any Secret rule
    suffices, and a labelled Secret that absence of the key would read is ignored."""
    monkeypatch.setattr("micro.config.kube.SYNC_TIMEOUT_S", 3.0)
    token = restricted_account(scenario, cluster, CONFIGMAPS_ONLY)
    scenario.put_configmap({"config.yaml": "greeting:\n  text: from-configmap\n"})
    scenario.put_secret({"keys.yaml": "greeting:\n  repeat: 7\n"})
    with cluster.api_client(token) as restricted:
        # Absent: every labelled Secret is listed, which this Role refuses.
        with pytest.raises(ConfigError, match="cannot list secrets"):
            await scenario.load(restricted).start()
        set_remote_secrets(scenario, [])
        handle = scenario.load(restricted)
        await handle.start()
        try:
            assert handle.current.greeting == Greeting(text="from-configmap", repeat=1)
        finally:
            await handle.stop()


async def test_absent_secrets_key_reads_every_labelled_secret(
    scenario: Scenario, api: kubernetes.client.ApiClient
) -> None:
    scenario.put_secret({"a.yaml": "greeting:\n  text: first\n"}, name="one")
    scenario.put_secret({"b.yaml": "greeting:\n  repeat: 3\n"}, name="two")
    handle = scenario.load(api)
    await handle.start()
    try:
        assert handle.current.greeting == Greeting(text="first", repeat=3)
    finally:
        await handle.stop()
