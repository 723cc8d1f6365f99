"""The local layer: every *.yaml, *.yml and *.json file of one folder, in name order."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from micro.config.documents import FORMATS, ConfigDocument, parse_document
from micro.config.errors import ConfigError
from micro.config.placeholders import expand_placeholders


def read_config_dir(config_dir: Path, env: Mapping[str, str]) -> list[ConfigDocument]:
    """Parse the folder's config files, named by their file name as in the logs."""
    if not config_dir.is_dir():
        raise ConfigError(f"config folder {config_dir} does not exist or is not a folder")
    documents = []
    paths = sorted(
        path for path in config_dir.iterdir() if path.is_file() and path.suffix.lower() in FORMATS
    )
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path.name}: cannot be read: {exc}") from None
        document = parse_document(path.name, text)
        if document is not None:
            documents.append(expand(document, env))
    return documents


def expand(document: ConfigDocument, env: Mapping[str, str]) -> ConfigDocument:
    """The document with its `${NAME:default}` placeholders expanded from `env`."""
    data = expand_placeholders(dict(document.data), env, origin=document.name)
    return ConfigDocument(document.name, document.format, data, document.secret)
