"""Write each service's Dockerfile from docker/service.Dockerfile.in (`make dockerfiles`).

Docker has no include, so the five <svc>/Dockerfile are rendered from one template. Its
values come from where they already live: a service is a workspace member (root
pyproject.toml) with a manifest .k8s/<svc>.yaml; its package and description come from
its pyproject.toml, its exposed ports from its Deployment's containerPorts.

`python scripts/render_dockerfiles.py --check` writes nothing and exits 1 naming each
Dockerfile that differs from its rendering (or is missing).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path("docker/service.Dockerfile.in")
PLACEHOLDER = re.compile(r"@[A-Z_]+@")


@dataclass(frozen=True)
class Service:
    name: str
    package: str
    description: str
    ports: tuple[int, ...]


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def workspace_members(root: Path) -> list[str]:
    members: list[str] = read_toml(root / "pyproject.toml")["tool"]["uv"]["workspace"]["members"]
    return members


def container_ports(manifest: Path, name: str) -> tuple[int, ...]:
    """The containerPorts of Deployment `name`'s first container, sorted."""
    for document in yaml.safe_load_all(manifest.read_text()):
        if document and document["kind"] == "Deployment" and document["metadata"]["name"] == name:
            container = document["spec"]["template"]["spec"]["containers"][0]
            return tuple(sorted(int(p["containerPort"]) for p in container["ports"]))
    raise SystemExit(f"{manifest}: no Deployment named {name}")


def load_service(root: Path, name: str) -> Service:
    pyproject = read_toml(root / name / "pyproject.toml")
    (package,) = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    description = f"go-micro.{name}: {pyproject['project']['description']}"
    if '"' in description or "\\" in description:
        raise SystemExit(f'{name}/pyproject.toml: the description may not hold " or \\')
    ports = container_ports(root / ".k8s" / f"{name}.yaml", name)
    return Service(name, package, description, ports)


def shipped_services(root: Path) -> list[Service]:
    """The workspace members that are deployed: those with a .k8s/<member>.yaml."""
    members = workspace_members(root)
    return [load_service(root, m) for m in members if (root / ".k8s" / f"{m}.yaml").is_file()]


def render(template: str, service: Service, members: list[str]) -> str:
    values = {
        "@SERVICE@": service.name,
        "@PACKAGE@": service.package,
        "@DESCRIPTION@": service.description,
        "@PORTS@": " ".join(str(p) for p in service.ports),
        "@MEMBER_PYPROJECTS@": "\n".join(f"COPY {m}/pyproject.toml {m}/" for m in members),
    }

    def value(match: re.Match[str]) -> str:
        if match.group() not in values:
            raise SystemExit(f"{TEMPLATE}: unknown placeholder {match.group()}")
        return values[match.group()]

    return PLACEHOLDER.sub(value, template)


def rendered_dockerfiles(root: Path) -> dict[Path, str]:
    """The Dockerfile of every shipped service, by its path relative to root."""
    template = (root / TEMPLATE).read_text()
    members = workspace_members(root)
    return {
        Path(service.name) / "Dockerfile": render(template, service, members)
        for service in shipped_services(root)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a Dockerfile is stale")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository root")
    args = parser.parse_args()
    root: Path = args.root
    stale: list[Path] = []
    for relative, text in rendered_dockerfiles(root).items():
        path = root / relative
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(relative)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print("stale, run `make dockerfiles`:", *map(str, stale), sep="\n  ")
        return 1
    for relative in stale:
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
