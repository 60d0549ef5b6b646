"""The committed modules in libs/hybridrl/proto/v1/ match what protos/generate.py produces."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMITTED_DIR = REPO_ROOT / "libs" / "hybridrl" / "proto" / "v1"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "protos_generate", REPO_ROOT / "protos" / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return _load_generator()


@pytest.fixture(scope="module")
def fresh_dir(generator: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("fresh") / "v1"
    generator.write_sources(out_dir)
    return out_dir


def _file_contents(directory: Path) -> dict[str, str]:
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in directory.iterdir()
        if path.is_file() and path.suffix in {".py", ".pyi"}
    }


def test_committed_stubs_match_fresh_generation(fresh_dir: Path) -> None:
    fresh = _file_contents(fresh_dir)
    committed = _file_contents(COMMITTED_DIR)
    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    assert not stale, (
        f"stale generated files in {COMMITTED_DIR}: {', '.join(stale)}; "
        "regenerate with: python protos/generate.py"
    )


def test_generation_emits_messages_services_and_stubs(fresh_dir: Path) -> None:
    names = sorted(path.name for path in fresh_dir.iterdir())
    expected = ["__init__.py"]
    for proto in ("buffer", "common", "events", "learner", "reward", "rollout"):
        expected += [f"{proto}_pb2.py", f"{proto}_pb2.pyi"]
    for service_proto in ("buffer", "learner", "reward", "rollout"):
        expected += [f"{service_proto}_pb2_grpc.py", f"{service_proto}_pb2_grpc.pyi"]
    assert names == sorted(expected)


def test_generated_imports_point_at_the_library_package(fresh_dir: Path) -> None:
    events = (fresh_dir / "events_pb2.py").read_text(encoding="utf-8")
    assert "from hybridrl.proto.v1 import common_pb2" in events
    assert "from hybridrl.v1 import" not in events
    rollout_grpc = (fresh_dir / "rollout_pb2_grpc.py").read_text(encoding="utf-8")
    # The gRPC method path is a wire name and must keep the proto package.
    assert "'/hybridrl.v1.RolloutService/Generate'" in rollout_grpc


def test_rewrite_changes_module_references_only(generator: ModuleType) -> None:
    source = (
        "from hybridrl.v1 import common_pb2 as c\n"
        "_builder.Build(DESCRIPTOR, 'hybridrl.v1.events_pb2', g)\n"
        "'/hybridrl.v1.RewardService/Score'\n"
        "full_name = 'hybridrl.v1.Tensor'\n"
    )
    assert generator.rewrite_module_references(source) == (
        "from hybridrl.proto.v1 import common_pb2 as c\n"
        "_builder.Build(DESCRIPTOR, 'hybridrl.proto.v1.events_pb2', g)\n"
        "'/hybridrl.v1.RewardService/Score'\n"
        "full_name = 'hybridrl.v1.Tensor'\n"
    )


def test_check_names_changed_missing_and_extra_files(
    generator: ModuleType, fresh_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "v1"
    shutil.copytree(fresh_dir, out_dir)
    with (out_dir / "events_pb2.pyi").open("a", encoding="utf-8") as stub:
        stub.write("# edited by hand\n")
    (out_dir / "learner_pb2.py").unlink()
    (out_dir / "removed_pb2.py").write_text("", encoding="utf-8")

    assert generator.find_stale_files(out_dir) == [
        "events_pb2.pyi",
        "learner_pb2.py",
        "removed_pb2.py",
    ]
    assert generator.main(["--check", "--out", str(out_dir)]) == 1
    report = capsys.readouterr().err
    assert "events_pb2.pyi" in report
    assert "learner_pb2.py" in report
    assert "removed_pb2.py" in report


def test_check_passes_and_write_restores_a_fresh_copy(
    generator: ModuleType, fresh_dir: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "v1"
    shutil.copytree(fresh_dir, out_dir)
    assert generator.main(["--check", "--out", str(out_dir)]) == 0

    (out_dir / "common_pb2.py").write_text("broken", encoding="utf-8")
    (out_dir / "removed_pb2.py").write_text("", encoding="utf-8")
    assert generator.main(["--out", str(out_dir)]) == 0
    assert _file_contents(out_dir) == _file_contents(fresh_dir)
