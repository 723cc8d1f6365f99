"""Render a new service from templates/service (`make new-service NAME=orders-srv`).

The templates hold the shape every service follows (docs/framework.md): the proto
contract with a sample RPC, the package, its configs, pyproject.toml, Makefile, README,
tests and the .k8s manifest. Paths and contents name the service through placeholders:
@SERVICE@ (orders-srv), @PACKAGE@ (orders_srv), @SHORT@ (orders) and @CLASS@ (Orders).

Everything is rendered into a scratch folder first and moved in only when complete, so
a bad name or a file that exists already leaves the repository untouched. Then
`uv lock` takes the new workspace member in, proto/generate.py writes its gRPC code
and scripts/config_docs.py its table in docs/configuration.md. Nothing else needs an
edit: every list of services is derived from the *-srv folders.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from micro.testing.tools import uv_command

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = Path("templates/service")
SUFFIX = ".tmpl"
NAME_RULE = re.compile(r"[a-z][a-z0-9-]*-srv")
PLACEHOLDER = re.compile(r"@[A-Z]+@")


class BadName(ValueError):
    """A name the conventions do not allow, or one that is taken."""


@dataclass(frozen=True)
class Names:
    service: str  # orders-srv: the folder, the Kubernetes objects, the image
    package: str  # orders_srv: the Python package and the proto package's first part
    short: str  # orders: the proto file and the test modules
    cls: str  # Orders: the prefix of the generated classes

    @classmethod
    def of(cls, service: str) -> Names:
        if not NAME_RULE.fullmatch(service):
            raise BadName(
                f"{service!r}: a service name is lowercase letters, digits and dashes, "
                "starts with a letter and ends in -srv (e.g. orders-srv)"
            )
        package = service.replace("-", "_")
        short = package.removesuffix("_srv")
        if keyword.iskeyword(short):  # it names the proto module and the test fixtures
            raise BadName(f"{service!r}: {short!r} is a Python keyword")
        return cls(service, package, short, "".join(p.title() for p in short.split("_")))

    def values(self) -> dict[str, str]:
        return {
            "@SERVICE@": self.service,
            "@PACKAGE@": self.package,
            "@SHORT@": self.short,
            "@CLASS@": self.cls,
        }


def fill(text: str, names: Names) -> str:
    values = names.values()

    def value(match: re.Match[str]) -> str:
        if match.group() not in values:
            raise SystemExit(f"{TEMPLATES}: unknown placeholder {match.group()}")
        return values[match.group()]

    return PLACEHOLDER.sub(value, text)


def rendered_files(root: Path, names: Names) -> dict[Path, str]:
    """Every file of the new service, by its path relative to the repository root."""
    templates = root / TEMPLATES
    files = {}
    for template in sorted(templates.rglob(f"*{SUFFIX}")):
        relative = Path(fill(template.relative_to(templates).as_posix(), names))
        files[relative.with_name(relative.name.removesuffix(SUFFIX))] = fill(
            template.read_text(), names
        )
    return files


def render(root: Path, names: Names) -> list[Path]:
    """Write the service's files under root, all or none; returns them."""
    files = rendered_files(root, names)
    taken = [p for p in [Path(names.service), *files] if (root / p).exists()]
    if taken:
        raise BadName(f"{names.service}: already exists: {', '.join(map(str, taken))}")
    with tempfile.TemporaryDirectory(prefix="new-service-", dir=root) as scratch:
        for relative, text in files.items():
            path = Path(scratch) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        # The service folder moves in whole; the proto and manifest files one by one,
        # into folders that exist already.
        moved: list[Path] = []
        try:
            for relative in sorted({Path(p.parts[0]) for p in files}):
                source = Path(scratch) / relative
                if not (root / relative).exists():
                    shutil.move(source, root / relative)
                    moved.append(relative)
                    continue
                for path in sorted(p for p in source.rglob("*") if p.is_file()):
                    target = root / path.relative_to(scratch)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(path, target)
                    moved.append(target.relative_to(root))
        except OSError:
            for relative in moved:
                target = root / relative
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            raise
    return sorted(files)


def finish(root: Path, names: Names) -> None:
    """Take the new member into the lock, generate its proto code and config table, and
    let ruff order its imports (where the package sorts among api and micro depends on
    its name)."""
    uv = uv_command()
    run = [*uv, "run", "--locked", "--all-packages"]
    for command in (
        [*uv, "lock"],
        [*run, "python", "proto/generate.py"],
        [*run, "python", "scripts/config_docs.py"],
        [*run, "ruff", "check", "--quiet", "--fix", "--select", "I", names.service],
        [*run, "ruff", "format", "--quiet", names.service],
    ):
        subprocess.run(command, cwd=root, check=True)  # noqa: S603 - our own tools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the service's folder name, e.g. orders-srv")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository root")
    args = parser.parse_args()
    root: Path = args.root.resolve()
    try:
        names = Names.of(args.name)
        written = render(root, names)
    except BadName as error:
        print(f"new-service: {error}; nothing written", file=sys.stderr)
        return 2
    finish(root, names)
    print(f"new-service: rendered {names.service}:", *map(str, written), sep="\n  ")
    print(f"Next: `make -C {names.service} test`, then `make run` starts it with the rest.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
