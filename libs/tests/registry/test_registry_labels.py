"""Label values of the registry contract: validation messages and instance ids."""

from __future__ import annotations

import pytest

from micro.registry import LabelValueError, RegistryKeys, instance_id
from micro.registry.labels import check_label_value


def test_keys_follow_the_prefix() -> None:
    keys = RegistryKeys("kratos")
    assert (keys.id, keys.app, keys.version) == (
        "kratos-service-id",
        "kratos-service-app",
        "kratos-service-version",
    )
    assert keys.metadata == "kratos-service-metadata"
    assert keys.protocols == "kratos-service-protocols"
    selector = RegistryKeys().app_selector("go-micro.user-srv")
    assert selector == "gomicro-service-app=go-micro.user-srv"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("x" * 64, "64 characters, at most 63"),
        ("v1 beta", "only letters, digits"),
        ("-v1", "begin and end"),
        ("v1.", "begin and end"),
        ("go/micro", "only letters, digits"),
    ],
)
def test_bad_label_values_are_named_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(LabelValueError, match=reason) as raised:
        check_label_value("gomicro-service-version", value)
    assert "gomicro-service-version" in str(raised.value)


def test_good_label_values_pass() -> None:
    for value in ("go-micro.user-srv", "v1.0.0", "0723caf", "a", "x" * 63):
        check_label_value("k", value)


def test_instance_id_is_pod_dot_service_like_the_go_micro_logs() -> None:
    assert (
        instance_id("user-srv-5fc4d67dd5-sm9g4", "go-micro.user-srv")
        == "user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv"
    )


def test_long_instance_ids_stay_valid_unique_and_stable() -> None:
    first = instance_id("device-srv-" + "a" * 50, "go-micro.device-srv")
    second = instance_id("device-srv-" + "a" * 49 + "b", "go-micro.device-srv")
    assert len(first) <= 63
    check_label_value("gomicro-service-id", first)
    assert first != second
    assert first == instance_id("device-srv-" + "a" * 50, "go-micro.device-srv")
