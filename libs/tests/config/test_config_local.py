"""load_config over local files and the environment: order, overrides, placeholders,
unknown extensions and error messages."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from micro.config import ConfigError, load_config
from micro.config.model import Section, ServiceConfig


class Greeting(Section):
    text: str = "hello"
    repeat: int = 1


class GreeterConfig(ServiceConfig):
    greeting: Greeting = Greeting()


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_defaults_without_any_source() -> None:
    handle = load_config(GreeterConfig, service="go-micro.greeter-srv", env={})
    assert handle.current == GreeterConfig()
    assert handle.last_error is None


def test_files_merge_in_name_order_and_keep_sibling_keys(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "greeting:\n  text: from-a\n  repeat: 2\nlog:\n  level: DEBUG\n")
    write(tmp_path, "b.json", '{"greeting": {"text": "from-b"}}')
    write(tmp_path, "c.yml", "server:\n  grpc:\n    timeout: 250ms\n")
    cfg = load_config(GreeterConfig, service="go-micro.greeter-srv", config_dir=tmp_path, env={})
    current = cfg.current
    assert current.greeting == Greeting(text="from-b", repeat=2)
    assert current.log.level == "DEBUG"
    assert current.server.grpc is not None
    assert current.server.grpc.timeout == timedelta(milliseconds=250)


def test_environment_beats_files(tmp_path: Path) -> None:
    write(tmp_path, "config.yaml", "greeting:\n  text: from-file\n  repeat: 2\n")
    env = {
        "MICRO__GREETING__TEXT": "from-env",
        "MICRO__LOG__LEVEL": "WARNING",
        "MICRO__SERVER__HTTP__ORIGINS": '["https://a.example", "https://b.example"]',
        "MICRO_OTHER": "ignored",
    }
    current = load_config(
        GreeterConfig, service="go-micro.greeter-srv", config_dir=tmp_path, env=env
    ).current
    assert current.greeting == Greeting(text="from-env", repeat=2)
    assert current.log.level == "WARNING"
    assert current.server.http is not None
    assert current.server.http.origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", timedelta(0)),
        ("1.5", timedelta(seconds=1.5)),
        (" 30 ", timedelta(seconds=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("1m30s", timedelta(seconds=90)),
    ],
)
def test_durations_from_the_environment_take_bare_seconds(raw: str, expected: timedelta) -> None:
    env = {"MICRO__SHUTDOWN__DRAIN_DELAY": raw}
    current = load_config(GreeterConfig, service="go-micro.greeter-srv", env=env).current
    assert current.shutdown.drain_delay == expected


@pytest.mark.parametrize("raw", ["", "-1", "1.", "soon", "1 s", "1d"])
def test_a_malformed_duration_from_the_environment_names_the_variable(raw: str) -> None:
    expected = (
        r"shutdown\.drain_delay \(from the environment, MICRO__SHUTDOWN__DRAIN_DELAY\): "
        r"Value error, not a duration"
    )
    with pytest.raises(ConfigError, match=expected):
        load_config(GreeterConfig, service="s", env={"MICRO__SHUTDOWN__DRAIN_DELAY": raw})


def test_config_dir_from_environment(tmp_path: Path) -> None:
    write(tmp_path, "config.yaml", "greeting:\n  repeat: 7\n")
    env = {"MICRO_CONFIG_DIR": str(tmp_path)}
    current = load_config(GreeterConfig, service="go-micro.greeter-srv", env=env).current
    assert current.greeting.repeat == 7


def test_missing_config_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(GreeterConfig, service="s", config_dir=tmp_path / "nope", env={})


def test_placeholders_expand_from_the_environment(tmp_path: Path) -> None:
    write(
        tmp_path,
        "config.yaml",
        "greeting:\n  text: 'hi ${WHO:world}, from ${PLACE}'\n  repeat: ${REPEAT:3}\n",
    )
    current = load_config(
        GreeterConfig, service="s", config_dir=tmp_path, env={"PLACE": "earth"}
    ).current
    assert current.greeting == Greeting(text="hi world, from earth", repeat=3)
    env = {"PLACE": "mars", "WHO": "you", "REPEAT": "5"}
    current = load_config(GreeterConfig, service="s", config_dir=tmp_path, env=env).current
    assert current.greeting == Greeting(text="hi you, from mars", repeat=5)


def test_unset_placeholder_without_default_names_file_and_variable(tmp_path: Path) -> None:
    write(tmp_path, "config.yaml", "greeting:\n  text: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: \$\{NOT_SET_ANYWHERE\} is not set"):
        load_config(GreeterConfig, service="s", config_dir=tmp_path, env={})


def test_other_files_are_ignored_and_each_file_logs_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "config.yaml", "greeting:\n  repeat: 4\n")
    write(tmp_path, "notes.txt", "not config")
    caplog.set_level(logging.DEBUG, logger="micro.config")
    current = load_config(GreeterConfig, service="s", config_dir=tmp_path, env={}).current
    assert current.greeting.repeat == 4
    loaded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("config loaded")]
    assert loaded == ["config loaded: config.yaml format: yaml"]


def test_validation_error_names_field_and_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "greeting:\n  repeat: 2\n")
    write(tmp_path, "b.yaml", "greeting:\n  repeat: many\nserver:\n  grpc:\n    timout: 1s\n")
    with pytest.raises(ConfigError) as raised:
        load_config(GreeterConfig, service="s", config_dir=tmp_path, env={})
    message = str(raised.value)
    assert "greeting.repeat (from b.yaml)" in message
    assert "server.grpc.timout (from b.yaml): Extra inputs are not permitted" in message


def test_validation_error_from_the_environment_names_the_variable() -> None:
    expected = r"log\.level \(from the environment, MICRO__LOG__LEVEL\)"
    with pytest.raises(ConfigError, match=expected):
        load_config(GreeterConfig, service="s", env={"MICRO__LOG__LEVEL": "LOUD"})


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "config.yaml", "greeting:\n  text: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: invalid yaml: .* at line 3"):
        load_config(GreeterConfig, service="s", config_dir=tmp_path, env={})


@pytest.mark.parametrize(
    ("name", "text"),
    [("config.yaml", "greeting: " + "[" * 5000), ("config.json", "[" * 100_000)],
)
def test_a_document_nested_too_deeply_is_a_config_error(
    tmp_path: Path, name: str, text: str
) -> None:
    write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=rf"{name}: invalid \w+: nested too deeply"):
        load_config(GreeterConfig, service="s", config_dir=tmp_path, env={})


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "config.json", "[1, 2]")
    with pytest.raises(ConfigError, match=r"config\.json: the top level must be a mapping"):
        load_config(GreeterConfig, service="s", config_dir=tmp_path, env={})


def test_remote_section_is_validated_at_load(tmp_path: Path) -> None:
    write(tmp_path, "remote.yaml", "remote:\n  type: consul\n")
    with pytest.raises(ConfigError, match=r"remote\.type \(from remote\.yaml\)"):
        load_config(GreeterConfig, service="s", config_dir=tmp_path, env={})
