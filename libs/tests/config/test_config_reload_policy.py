"""Reload policies declared in config models: markers, section defaults, what changed."""

from __future__ import annotations

from typing import Annotated

from micro.config.model import Section, ServiceConfig
from micro.config.reload import (
    Reload,
    changed_fields,
    declared_policy,
    policy_of,
    undeclared_fields,
)


class Tuning(Section):
    reload_policy = Reload.LIVE

    level: int = 1
    pool_size: Annotated[int, Reload.RESTART] = 4


class Item(Section):
    name: str  # inside a list: the list's field carries the policy


class Undecided(Section):
    knob: int = 0


class ExampleConfig(ServiceConfig):
    tuning: Tuning = Tuning()
    items: Annotated[tuple[Item, ...], Reload.LIVE] = ()
    extra: Annotated[Tuning | None, Reload.RESTART] = None
    undecided: Undecided = Undecided()
    loose: str = ""


def test_a_field_marker_beats_its_section_default() -> None:
    assert declared_policy(Tuning, "level") is Reload.LIVE
    assert declared_policy(Tuning, "pool_size") is Reload.RESTART


def test_a_field_without_a_declaration_counts_as_restart_only() -> None:
    assert declared_policy(Undecided, "knob") is None
    assert policy_of(Undecided, "knob") is Reload.RESTART


def test_undeclared_fields_are_listed_by_path() -> None:
    # tuning, undecided: always present, so only their own fields need a policy.
    assert undeclared_fields(ExampleConfig) == ["undecided.knob", "loose"]


def test_the_framework_sections_declare_every_field() -> None:
    assert undeclared_fields(ServiceConfig) == []


def test_changed_fields_compare_sections_field_by_field() -> None:
    old = ExampleConfig()
    new = ExampleConfig.model_validate(
        {
            "tuning": {"level": 2, "pool_size": 8},
            "items": [{"name": "a"}],
            "extra": {"level": 3},
            "log": {"level": "DEBUG"},
            "server": {"grpc": {"addr": "127.0.0.1:0"}},
            "registry": {"prefix": "kratos"},
        }
    )
    assert sorted(changed_fields(old, new)) == [
        ("extra", Reload.RESTART),
        ("items", Reload.LIVE),
        ("log.level", Reload.LIVE),
        ("registry.prefix", Reload.RESTART),
        ("server.grpc", Reload.RESTART),
        ("tuning.level", Reload.LIVE),
        ("tuning.pool_size", Reload.RESTART),
    ]
    assert changed_fields(new, new) == []


def test_a_section_present_on_both_sides_is_compared_inside() -> None:
    old = ExampleConfig.model_validate({"server": {"http": {"addr": "127.0.0.1:0"}}})
    new = ExampleConfig.model_validate(
        {"server": {"http": {"addr": "127.0.0.1:0", "origins": ["https://a.example"]}}}
    )
    assert changed_fields(old, new) == [("server.http.origins", Reload.LIVE)]
