"""Generate the Python modules and type stubs for the protobuf contract in protos/hybridrl/v1/.

The .proto files are the contract between the services of the training loop (Kafka event
payloads and gRPC services). This script turns them into ``libs/hybridrl/proto/v1/``:
``*_pb2.py`` (messages), ``*_pb2_grpc.py`` (service stubs and servicer base classes) and
``.pyi`` stubs for mypy, importable as ``hybridrl.proto.v1.<name>_pb2``.

protoc names the modules after the proto package (``hybridrl.v1``), which would collide with
the ``hybridrl`` library, so the generated imports are rewritten to ``hybridrl.proto.v1``.
Proto full names (``hybridrl.v1.Tensor``) and gRPC method paths (``/hybridrl.v1.X/Y``) are
wire-level names and stay unchanged.

Usage::

    python protos/generate.py              # regenerate libs/hybridrl/proto/v1/
    python protos/generate.py --out DIR    # write somewhere else
    python protos/generate.py --check      # exit 1 and list stale files, write nothing
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
PROTO_PACKAGE_DIR = Path("hybridrl") / "v1"
DEFAULT_OUT_DIR = REPO_ROOT / "libs" / "hybridrl" / "proto" / "v1"

# Module references end in _pb2 / _pb2_grpc or sit in an import statement; wire names do not.
_MODULE_REFERENCE = re.compile(r"\bhybridrl\.v1(?=\.\w+_pb2(?:_grpc)?\b| import\b)")

_SERVICE_REGISTRATION = re.compile(r"^def add_\w+Servicer_to_server\(", re.MULTILINE)

PACKAGE_INIT = '''"""Generated protobuf messages and gRPC stubs of the hybridrl.v1 contract.

Do not edit: the sources are protos/hybridrl/v1/*.proto; regenerate with
``python protos/generate.py``.
"""
'''

_GENERATED_SUFFIXES = (".py", ".pyi")


def _grpc_tools_include_dir() -> Path:
    """Directory of the well-known types (google/protobuf/*.proto) shipped with grpc_tools."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("grpcio-tools is not installed in this Python environment")
    return Path(next(iter(spec.submodule_search_locations))) / "_proto"


def _plugin_path(name: str) -> Path:
    """Path of a protoc plugin installed next to the running interpreter (the venv's bin/)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise RuntimeError(f"protoc plugin {name} not found at {path}; install mypy-protobuf")
    return path


def _proto_files() -> list[Path]:
    """The .proto sources, relative to PROTO_ROOT, in a stable order."""
    files = sorted(
        path.relative_to(PROTO_ROOT) for path in (PROTO_ROOT / PROTO_PACKAGE_DIR).glob("*.proto")
    )
    if not files:
        raise RuntimeError(f"no .proto files under {PROTO_ROOT / PROTO_PACKAGE_DIR}")
    return files


def _run_protoc(out_dir: Path) -> None:
    """Run protoc with the python, grpc and mypy generators, writing under out_dir."""
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{_grpc_tools_include_dir()}",
        f"--plugin=protoc-gen-mypy={_plugin_path('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin_path('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(path) for path in _proto_files()),
    ]
    result = subprocess.run(command, cwd=PROTO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({result.returncode}):\n{result.stderr}")


def rewrite_module_references(source: str) -> str:
    """Point imports of the generated modules at hybridrl.proto.v1 instead of hybridrl.v1."""
    return _MODULE_REFERENCE.sub("hybridrl.proto.v1", source)


def _declares_service(grpc_module_source: str) -> bool:
    """Whether a generated *_pb2_grpc.py holds a service (protoc emits one for every file)."""
    return _SERVICE_REGISTRATION.search(grpc_module_source) is not None


def generate_sources() -> dict[str, str]:
    """Generate the package's files in memory: file name -> contents, sorted by name."""
    with tempfile.TemporaryDirectory(prefix="hybridrl-protoc-") as tmp:
        raw_dir = Path(tmp)
        _run_protoc(raw_dir)
        package_dir = raw_dir / PROTO_PACKAGE_DIR
        sources = {
            path.name: rewrite_module_references(path.read_text(encoding="utf-8"))
            for path in package_dir.iterdir()
            if path.suffix in _GENERATED_SUFFIXES
        }
    for name in list(sources):
        if name.endswith("_pb2_grpc.py") and not _declares_service(sources[name]):
            del sources[name]
            sources.pop(name + "i", None)
    sources["__init__.py"] = PACKAGE_INIT
    return dict(sorted(sources.items()))


def _committed_files(out_dir: Path) -> dict[str, str]:
    """The generated-looking files currently in out_dir: file name -> contents."""
    if not out_dir.is_dir():
        return {}
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(out_dir.iterdir())
        if path.is_file() and path.suffix in _GENERATED_SUFFIXES
    }


def find_stale_files(out_dir: Path) -> list[str]:
    """Names of files in out_dir that differ from a fresh generation, are missing or are extra."""
    fresh = generate_sources()
    committed = _committed_files(out_dir)
    return sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )


def write_sources(out_dir: Path) -> list[str]:
    """Regenerate out_dir in place, removing generated files no longer produced.

    Returns the names of the files written.
    """
    fresh = generate_sources()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _committed_files(out_dir).keys() - fresh.keys():
        (out_dir / name).unlink()
    for name, text in fresh.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return list(fresh)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"output package directory (default: {DEFAULT_OUT_DIR.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare a fresh generation with --out and exit 1 if any file is stale",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    if args.check:
        stale = find_stale_files(out_dir)
        if stale:
            print(f"stale generated files in {out_dir}:", file=sys.stderr)
            for name in stale:
                print(f"  {name}", file=sys.stderr)
            print("regenerate with: python protos/generate.py", file=sys.stderr)
            return 1
        print(f"{out_dir}: up to date")
        return 0
    written = write_sources(out_dir)
    print(f"wrote {len(written)} files to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
