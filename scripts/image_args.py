"""Print the build args of a service's image, one `--build-arg=KEY=VALUE` a line.

docker/service.Dockerfile builds every service; what differs between their images comes
from where it already lives: the package and description from <svc>/pyproject.toml,
the exposed ports from the containerPorts of the Deployment in .k8s/<svc>.yaml.
`make docker-<svc>` passes these lines to `docker build` as words.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from micro.registry.names import registry_name

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Service:
    name: str
    package: str
    description: str
    ports: tuple[int, ...]

    def build_args(self) -> dict[str, str]:
        return {
            "SERVICE": self.name,
            "PACKAGE": self.package,
            "DESCRIPTION": self.description,
            "PORTS": " ".join(str(p) for p in self.ports),
        }


def container_ports(manifest: Path, name: str) -> tuple[int, ...]:
    """The containerPorts of Deployment `name`'s first container, sorted."""
    for document in yaml.safe_load_all(manifest.read_text()):
        if document and document["kind"] == "Deployment" and document["metadata"]["name"] == name:
            container = document["spec"]["template"]["spec"]["containers"][0]
            return tuple(sorted(int(p["containerPort"]) for p in container["ports"]))
    raise SystemExit(f"{manifest}: no Deployment named {name}")


def load_service(root: Path, name: str) -> Service:
    with (root / name / "pyproject.toml").open("rb") as file:
        pyproject = tomllib.load(file)
    (package,) = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    description = f"{registry_name(name)}: {pyproject['project']['description']}"
    if any(c in description for c in '"\\\n'):
        raise SystemExit(
            f"{name}/pyproject.toml: the description may not hold a quote, \\ or newline"
        )
    ports = container_ports(root / ".k8s" / f"{name}.yaml", name)
    return Service(name, package, description, ports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", help="a service folder, e.g. device-srv")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository root")
    args = parser.parse_args()
    for key, value in load_service(args.root, args.service).build_args().items():
        print(f"--build-arg={key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
