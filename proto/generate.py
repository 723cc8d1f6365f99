"""Generate the Python code of every .proto under proto/api (run by `make proto`).

The .proto files live under the `api/` prefix so that the generated package is
`api.admin_srv.v1`, which does not shadow the service package `admin_srv`, while the
protobuf package (and so the gRPC name, e.g. admin_srv.v1.AuthenticationService)
stays exactly as in the original example.

`python proto/generate.py --check` regenerates into a temporary folder and exits 1
when the committed code differs, naming the stale files.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
API_DIR = PROTO_ROOT / "api"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files(root: Path) -> list[Path]:
    return sorted((root / "api").rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write the generated modules for every .proto into out_dir (a copy of the tree)."""
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files(PROTO_ROOT)]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for package_dir in {p.parent for p in (out_dir / "api").rglob("*_pb2.py")}:
        for parent in [package_dir, *package_dir.relative_to(out_dir).parents]:
            init = out_dir / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.touch()


def generated_files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in (root / "api").rglob("*")
        if p.name.endswith(GENERATED_SUFFIXES)
    }


def stale_files(out_dir: Path) -> list[str]:
    fresh, committed = generated_files(out_dir), generated_files(PROTO_ROOT)
    stale = sorted(str(p) for p in fresh ^ committed)
    stale += sorted(
        str(p)
        for p in fresh & committed
        if not filecmp.cmp(out_dir / p, PROTO_ROOT / p, shallow=False)
    )
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        generate(out_dir)
        if check:
            stale = stale_files(out_dir)
            if stale:
                print("generated code is stale, run `make proto`:", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        for path in generated_files(PROTO_ROOT):
            (PROTO_ROOT / path).unlink()
        for path in generated_files(out_dir):
            shutil.copyfile(out_dir / path, PROTO_ROOT / path)
        for init in (out_dir / "api").rglob("__init__.py"):
            target = PROTO_ROOT / init.relative_to(out_dir)
            if not target.exists():
                target.touch()
    print(f"generated {len(proto_files(PROTO_ROOT))} .proto files into {API_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
