"""The one mapping from container image names to local commands (devcluster/images.yaml).

An image reference `registry/repo/name:tag@digest` is matched by its repository path
without registry, tag or digest, against shell-style patterns. The mapped `command` plays
the image's ENTRYPOINT and `args` its CMD, so a container's own command/args override
them exactly as with a real image. `python` as the first word is the runner's own
interpreter (the workspace environment). `files` maps paths inside the image's root to
host folders (the image's COPY), and an absolute `env` value under one of them names
that place in the container's root, as the image's ENV does inside the image.

One entry may serve a family of images: `{name}` in its command, args, workingDir,
files and env is the matched repository's last segment (`devexps/orders-srv` ->
`orders-srv`) and `{package}` that name as a Python package (`orders_srv`), so every
`*-srv` image is described once and a new service needs no entry of its own.
"""

from __future__ import annotations

import fnmatch
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_IMAGES_FILE = pathlib.Path(__file__).resolve().parents[3] / "images.yaml"


@dataclass(frozen=True)
class ImageCommand:
    command: list[str]
    args: list[str] = field(default_factory=list)
    working_dir: pathlib.Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    # A path inside the image's root (e.g. /app/user-srv/configs) -> a host folder.
    files: dict[str, pathlib.Path] = field(default_factory=dict)

    def image_env(self, container_root: pathlib.Path) -> dict[str, str]:
        """The image's ENV for a container whose root is `container_root`: a value that is
        a path under one of `files` is given as that path inside the root."""
        env = {}
        for key, value in self.env.items():
            inside = any(value == f or value.startswith(f.rstrip("/") + "/") for f in self.files)
            env[key] = str(container_root / value.lstrip("/")) if inside else value
        return env

    def link_files(self, container_root: pathlib.Path) -> None:
        """Put each of `files` at its place in the container's root (a symlink)."""
        for image_path, host in self.files.items():
            link = container_root / image_path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            link.symlink_to(host)


def repository(image: str) -> str:
    """`docker.io/devexps/admin-srv:v1@sha256:..` -> `devexps/admin-srv`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts)


@dataclass(frozen=True)
class ImageEntry:
    """One `images:` item as written; `command` fills in the placeholders for an image."""

    patterns: list[str]
    item: dict[str, Any]
    root: pathlib.Path

    def command(self, name: str) -> ImageCommand:
        def fill(value: object) -> str:
            return str(value).replace("{name}", name).replace("{package}", name.replace("-", "_"))

        item, root = self.item, self.root
        working_dir = item.get("workingDir")
        return ImageCommand(
            command=[fill(c) for c in item["command"]],
            args=[fill(a) for a in item.get("args") or []],
            working_dir=(root / fill(working_dir)).resolve() if working_dir else None,
            env={str(k): fill(v) for k, v in (item.get("env") or {}).items()},
            files={
                fill(k): (root / fill(v)).resolve() for k, v in (item.get("files") or {}).items()
            },
        )


class ImageMap:
    def __init__(self, entries: list[ImageEntry], source: pathlib.Path) -> None:
        self.entries = entries
        self.source = source

    @classmethod
    def load(cls, path: pathlib.Path = DEFAULT_IMAGES_FILE) -> ImageMap:
        document: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        root = (path.parent / str(document.get("root", "."))).resolve()
        entries = []
        for number, item in enumerate(document.get("images") or [], start=1):
            patterns = item.get("match")
            if not patterns or not item.get("command"):
                raise ValueError(f"{path}: image entry {number} needs `match` and `command`")
            if any(not str(image_path).startswith("/") for image_path in item.get("files") or {}):
                raise ValueError(f"{path}: image entry {number}: `files` keys are absolute paths")
            patterns = [patterns] if isinstance(patterns, str) else list(patterns)
            entries.append(ImageEntry([str(p) for p in patterns], item, root))
        return cls(entries, path)

    def lookup(self, image: str) -> ImageCommand | None:
        repo = repository(image)
        for entry in self.entries:
            if any(
                fnmatch.fnmatchcase(repo, p) or fnmatch.fnmatchcase(image, p)
                for p in entry.patterns
            ):
                return entry.command(repo.rsplit("/", 1)[-1])
        return None


def argv(mapped: ImageCommand, container: dict[str, Any]) -> list[str]:
    """ENTRYPOINT/CMD semantics: command replaces the entrypoint and drops the image's
    CMD; args replaces CMD."""
    if container.get("command"):
        words = [*container["command"], *(container.get("args") or [])]
    else:
        words = [*mapped.command, *(container.get("args") or mapped.args)]
    if words and words[0] in ("python", "python3"):
        words[0] = sys.executable
    return [str(w) for w in words]
