"""`make new-service`: a rendered service has the shape of the five others, passes the
lint and its own tests, and answers its sample RPC through discovery on the devcluster.

Everything happens in a scratch copy of the repository's files (what git tracks or
would add, none of the working copy's state), rendered once for the module: its own
environment comes from the uv cache, and the checks share it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from micro.testing.tools import uv_command

from .conftest import REPO_ROOT, SHIPPED_SERVICES

# Rendering, a cold mypy and a devcluster start: more than the default per-test limit.
pytestmark = pytest.mark.timeout(300)

SERVICE, PACKAGE, SHORT = "orders-srv", "orders_srv", "orders"
RENDERER = Path("scripts/new_service.py")
MODEL = "device-srv"  # the gRPC-only service whose manifest the template follows
# The role of each file in a service package (docs/framework.md); a package may add
# helpers with descriptive names, never another name for one of these roles.
EVERY_PACKAGE = {"__init__.py", "__main__.py", "config.py", "py.typed", "service.py"}
ROLES = EVERY_PACKAGE | {"usecases.py", "grpc_api.py", "http_api.py", "adapters.py"}
ROLES |= {"domain.py", "repository.py", "migrations.py"}
OLD_ROLE_NAMES = {"servicer.py", "router.py", "directory.py", "database.py", "wiring.py"}
SERVICE_FILES = {"Makefile", "README.md", "pyproject.toml", "configs", "tests"}
# What a role's file says in every service, the rendered one included: one way each.
IDIOMS = {
    "__main__.py": ("service import main",),
    "service.py": ("NAME = package_registry_name(__name__)", "async def compose(", "def main("),
    "grpc_api.py": ("from micro.servicer import",),
}


def copy_repository(destination: Path) -> None:
    """The files git tracks or would add (not ignored), as they are in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # the scratch copy gets its own .venv
    return env


def new_service(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / RENDERER), *args, "--root", str(root)],
        capture_output=True,
        text=True,
        env=environment(),
        check=False,
        timeout=300,
    )


def uv_run(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*uv_command(), "run", "--locked", "--all-packages", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=environment(),
        check=False,
        timeout=timeout,
    )


def copy_mypy_cache(destination: Path) -> None:
    """The repository's mypy cache, when `make lint` left one: mypy in the scratch copy
    then checks the new service against cached modules it re-validates by their hash,
    instead of type-checking every dependency cold."""
    cache = REPO_ROOT / ".mypy_cache"
    for source in cache.rglob("*") if cache.is_dir() else ():
        target = destination / ".mypy_cache" / source.relative_to(cache)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif source.suffix == ".db":
            # A consistent snapshot of the SQLite cache, even while another mypy writes it.
            with (
                contextlib.closing(sqlite3.connect(source)) as src,
                contextlib.closing(sqlite3.connect(target)) as dst,
            ):
                src.backup(dst)
        elif not source.name.endswith(("-journal", "-wal", "-shm")):  # the backup has them
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch repository with orders-srv rendered into it."""
    root = tmp_path_factory.mktemp("repository")
    copy_repository(root)
    copy_mypy_cache(root)
    result = new_service(root, SERVICE)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def names_in(root: Path, service: str) -> set[str]:
    return {p.name for p in (root / service).iterdir()}


def test_the_rendered_service_has_the_conventional_files(rendered: Path) -> None:
    assert names_in(rendered, SERVICE) == SERVICE_FILES | {PACKAGE}
    assert tree(rendered / SERVICE / PACKAGE) == EVERY_PACKAGE | {"usecases.py", "grpc_api.py"}
    assert tree(rendered / SERVICE / "configs") == {"config.yaml", "k8s/remote.yaml"}
    assert tree(rendered / SERVICE / "tests") == {
        "conftest.py",
        f"test_{SHORT}_grpc_api.py",
        f"test_{SHORT}_usecases.py",
    }
    assert (rendered / "proto/api" / PACKAGE / "v1" / f"{SHORT}.proto").is_file()
    assert (rendered / "proto/api" / PACKAGE / "v1" / f"{SHORT}_pb2_grpc.py").is_file()
    assert (rendered / ".k8s" / f"{SERVICE}.yaml").is_file()
    assert f'name = "{SERVICE}"' in (rendered / "uv.lock").read_text()
    assert f"### {SERVICE}" in (rendered / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("shipped_service", SHIPPED_SERVICES)
def test_every_service_has_the_shape_the_template_renders(
    rendered: Path, shipped_service: str
) -> None:
    """The five read like the rendered one, so that template and services cannot drift."""
    package = shipped_service.replace("-", "_")
    short = package.removesuffix("_srv")
    assert names_in(rendered, shipped_service) >= SERVICE_FILES | {package}
    files = {p.name for p in (rendered / shipped_service / package).glob("*.py")}
    assert files >= EVERY_PACKAGE - {"py.typed"}
    assert "usecases.py" in files
    assert not files & OLD_ROLE_NAMES
    speaks_grpc = (rendered / "proto/api" / package).is_dir()
    assert ("grpc_api.py" in files) is speaks_grpc
    tests = {p.name for p in (rendered / shipped_service / "tests").glob("*.py")}
    assert "conftest.py" in tests
    assert all(t.startswith(f"test_{short}_") for t in tests - {"conftest.py"}), tests
    assert (f"test_{short}_grpc_api.py" in tests) is speaks_grpc
    assert (f"test_{short}_http_api.py" in tests) is ("http_api.py" in files)


@pytest.mark.parametrize("shipped_service", SHIPPED_SERVICES)
def test_every_service_is_built_and_bootstrapped_as_the_template_says(
    rendered: Path, shipped_service: str
) -> None:
    """Makefile, build settings and the cluster bootstrap's shared keys, names swapped."""

    def read(service: str, relative: str) -> str:
        text = (rendered / service / relative).read_text()
        return text.replace(service, SERVICE).replace(service.replace("-", "_"), PACKAGE)

    assert read(shipped_service, "Makefile") == read(SERVICE, "Makefile")
    ours, theirs = (tomllib.loads(read(s, "pyproject.toml")) for s in (SERVICE, shipped_service))
    for key in ("build-system", "tool"):
        assert theirs[key] == ours[key], key
    assert theirs["project"]["requires-python"] == ours["project"]["requires-python"]
    assert {"micro-api"} <= set(theirs["project"]["dependencies"])
    ours, theirs = (
        yaml.safe_load(read(s, "configs/k8s/remote.yaml")) for s in (SERVICE, shipped_service)
    )
    for key in ("type", "k8s"):
        assert theirs["remote"][key] == ours["remote"][key], key
    assert theirs["registry"] == ours["registry"]
    assert theirs["server"]["admin"] == ours["server"]["admin"]


@pytest.mark.parametrize("service", [SERVICE, *SHIPPED_SERVICES])
def test_every_service_writes_each_role_the_same_way(rendered: Path, service: str) -> None:
    package = rendered / service / service.replace("-", "_")
    for name, idioms in IDIOMS.items():
        if (package / name).is_file():
            text = (package / name).read_text()
            assert [i for i in idioms if i not in text] == [], f"{service}: {name}"


def manifest(path: Path, rename: str = "") -> dict[str, dict[str, Any]]:
    """The objects of one manifest file by kind, `rename` (a service) read as orders-srv."""
    text = path.read_text()
    if rename:
        text = text.replace(rename, SERVICE)
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def pod_template(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment"]["spec"]["template"]["spec"]
    return spec


def test_the_manifest_follows_the_conventions_of_the_others(rendered: Path) -> None:
    ours = manifest(rendered / ".k8s" / f"{SERVICE}.yaml")
    model = manifest(REPO_ROOT / ".k8s" / f"{MODEL}.yaml", rename=MODEL)
    assert set(ours) == set(model) | {"NetworkPolicy"}
    for kind in ("ServiceAccount", "RoleBinding", "Service", "PodDisruptionBudget"):
        assert ours[kind] == model[kind], kind
    # The model's Role adds only its database Secret, which a new service does not own.
    assert [r for r in model["Role"]["rules"] if r["resources"] != ["secrets"]] == ours["Role"][
        "rules"
    ]
    deployment, expected = ours["Deployment"], model["Deployment"]
    assert deployment["spec"]["strategy"] == expected["spec"]["strategy"]
    ignored = {"gomicro-service-id"}  # each instance writes its own at start
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    model_labels = expected["spec"]["template"]["metadata"]["labels"]
    assert {k for k in labels if k not in ignored} == {k for k in model_labels if k not in ignored}
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"]
        == expected["spec"]["template"]["metadata"]["annotations"]
    )
    pod, model_pod = pod_template(ours), pod_template(model)
    for key in ("securityContext", "serviceAccountName", "terminationGracePeriodSeconds"):
        assert pod[key] == model_pod[key], key
    (container,), (model_container,) = pod["containers"], model_pod["containers"]
    for key in (
        "image", "workingDir", "ports", "env", "securityContext", "startupProbe",
        "readinessProbe", "livenessProbe", "lifecycle", "resources",
    ):  # fmt: skip
        assert container[key] == model_container[key], key
    policy = ours["NetworkPolicy"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": SERVICE}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize("shipped_service", SHIPPED_SERVICES)
def test_every_manifest_shares_the_template_security_and_probes(
    rendered: Path, shipped_service: str
) -> None:
    ours = pod_template(manifest(rendered / ".k8s" / f"{SERVICE}.yaml"))
    theirs = pod_template(manifest(REPO_ROOT / ".k8s" / f"{shipped_service}.yaml", shipped_service))
    assert theirs["securityContext"] == ours["securityContext"]
    (container,), (their_container,) = ours["containers"], theirs["containers"]
    for key in ("securityContext", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        assert their_container[key] == container[key], key


def test_the_rendered_service_passes_the_lint(rendered: Path) -> None:
    for command in (
        ("ruff", "check", SERVICE),
        ("ruff", "format", "--check", SERVICE),
        ("mypy", SERVICE),
        ("python", "proto/generate.py", "--check"),
        ("python", "scripts/config_docs.py", "--check"),
    ):
        result = uv_run(rendered, *command)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"


def test_the_rendered_service_passes_its_own_tests(rendered: Path) -> None:
    result = uv_run(rendered, "pytest", "-q", "-p", "no:cacheprovider", f"{SERVICE}/tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_the_rendered_service_answers_through_discovery_on_the_devcluster(
    rendered: Path, tmp_path: Path
) -> None:
    probe = uv_run(rendered, "python", "tests/new_service_probe.py", SERVICE, str(tmp_path))
    assert probe.returncode == 0, probe.stdout[-3000:] + probe.stderr[-3000:]
    lines = probe.stdout.strip().splitlines()
    assert "default deny: PERMISSION_DENIED" in lines, "a caller no rule names is refused"
    assert lines[-1] == "Hello, probe"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Orders-srv", "lowercase letters"),
        ("orders", "ends in -srv"),
        ("orders_srv", "lowercase letters"),
        ("9orders-srv", "starts with a letter"),
        ("import-srv", "'import' is a Python keyword"),
        (MODEL, "already exists"),
    ],
)
def test_a_bad_or_taken_name_is_refused_and_nothing_is_written(
    tmp_path: Path, name: str, reason: str
) -> None:
    shutil.copytree(REPO_ROOT / "templates", tmp_path / "templates")
    for folder in (".k8s", "proto/api", MODEL):
        (tmp_path / folder).mkdir(parents=True)
    before = tree(tmp_path)
    result = new_service(tmp_path, name)
    assert result.returncode == 2
    assert reason in result.stderr
    assert "nothing written" in result.stderr
    assert tree(tmp_path) == before
    assert {p.name for p in tmp_path.iterdir()} == {"templates", ".k8s", "proto", MODEL}


def test_a_file_in_the_way_stops_the_render_before_anything_moves(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "templates", tmp_path / "templates")
    (tmp_path / ".k8s").mkdir()
    (tmp_path / ".k8s" / f"{SERVICE}.yaml").write_text("kept: true\n")
    before = tree(tmp_path)
    result = new_service(tmp_path, SERVICE)
    assert result.returncode == 2
    assert f".k8s/{SERVICE}.yaml" in result.stderr
    assert tree(tmp_path) == before
    assert not (tmp_path / SERVICE).exists()
