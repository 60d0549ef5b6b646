"""The service Dockerfiles, linted by parsing them (no Docker daemon on this machine).

Each image is multi-stage: a builder installs the pinned requirements and the project wheel into
/opt/venv; the final stage copies only that venv onto a base with the same interpreter, runs as
10001, carries the OCI labels and starts ``hybridrl serve <name>``. The build context is cut by
the root .dockerignore, which must keep what the builders copy.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"rollout": 50051, "reward": 50052, "ssb": 50053, "learner": 50054}
CUDA_SERVICES = ("rollout", "reward", "learner")
BUILD_TOOLS = re.compile(r"build-essential|\bgcc\b|\bg\+\+|\bclang\b|\bmake\b|-dev\b|\bpip3? ")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [value for key, value in self.instructions if key == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    def ancestry(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        chain = [stage]
        while (parent := self.stage(chain[-1].base)) is not None:
            chain.append(parent)
        return chain


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined; comments dropped, as Docker does."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "the file ends inside a continued instruction"
    return lines


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, value = line.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"{path}: only ARG may precede the first FROM, got {line}"
            arg, _, default = value.partition("=")
            global_args[arg] = default
        else:
            stages[-1].instructions.append((keyword, value))
    return Dockerfile(global_args, stages)


def dockerfile(name: str) -> Dockerfile:
    return parse(ROOT / "services" / name / "Dockerfile")


def labels(stage: Stage) -> dict[str, str]:
    found = {}
    for value in stage.values("LABEL"):
        for pair in shlex.split(value):
            key, _, label = pair.partition("=")
            found[key] = label
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_final_stage_runs_hybridrl_serve_as_user_10001(name: str) -> None:
    final = dockerfile(name).stages[-1]
    assert len(dockerfile(name).stages) >= 2
    assert final.values("USER")[-1] == "10001:10001"
    assert final.values("WORKDIR")[-1] == "/app"
    assert json.loads(final.values("ENTRYPOINT")[-1]) == ["hybridrl"]
    assert json.loads(final.values("CMD")[-1]) == [
        "serve",
        name,
        "--config",
        f"/etc/hybridrl/{name}.yaml",
    ]
    assert final.values("EXPOSE") == [str(SERVICES[name])]
    assert any("useradd --uid 10001 --gid 10001" in run for run in final.values("RUN"))


@pytest.mark.parametrize("name", SERVICES)
def test_final_stage_carries_the_oci_labels_with_the_version_argument(name: str) -> None:
    final = dockerfile(name).stages[-1]
    found = labels(final)
    assert found["org.opencontainers.image.title"] == f"hybridrl-{name}"
    assert found["org.opencontainers.image.version"] == "${VERSION}"
    assert found["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert found["org.opencontainers.image.source"].startswith("${SOURCE_URL}")
    declared = dict(value.partition("=")[::2] for value in final.values("ARG"))
    assert declared["VERSION"] == "0.1.0"
    assert declared["SOURCE_URL"].startswith("https://")


@pytest.mark.parametrize("name", SERVICES)
def test_final_image_holds_no_build_tools_and_copies_only_the_venv(name: str) -> None:
    parsed = dockerfile(name)
    final = parsed.stages[-1]
    # Everything the final image holds: its own layers and those of the stages it builds on.
    for stage in parsed.ancestry(final):
        for run in stage.values("RUN"):
            assert not BUILD_TOOLS.search(run), f"{name}: {stage.name or 'final'} runs {run!r}"
    assert final.values("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert "PATH=/opt/venv/bin:$PATH" in final.values("ENV")[-1]


@pytest.mark.parametrize("name", SERVICES)
def test_builder_installs_the_pins_and_the_wheel_for_the_final_interpreter(name: str) -> None:
    parsed = dockerfile(name)
    builder = parsed.stage("builder")
    assert builder is not None
    runs = " ".join(builder.values("RUN"))
    assert "-m venv /opt/venv" in runs
    assert "pip install -r requirements/runtime.txt" in runs
    assert "pip wheel --no-deps --wheel-dir /wheels ." in runs
    assert "/wheels/hybridrl-*.whl" in runs
    assert "pip check" in runs
    # The venv's python is a link to the base's interpreter: both must start from one base.
    final_base = parsed.stages[-1].base
    assert final_base in [stage.base for stage in parsed.ancestry(builder)] + [
        stage.name for stage in parsed.ancestry(builder)
    ]


@pytest.mark.parametrize("name", CUDA_SERVICES)
def test_gpu_images_build_on_cuda_with_python_311_and_the_cuda_torch(name: str) -> None:
    parsed = dockerfile(name)
    assert parsed.global_args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert parsed.global_args["CUDA_IMAGE"].endswith("-ubuntu22.04")
    assert parsed.ancestry(parsed.stages[-1])[-1].base == "${CUDA_IMAGE}"
    python = parsed.stage("python")
    assert python is not None
    assert "python3.11" in " ".join(python.values("RUN"))
    builder = parsed.stage("builder")
    assert builder is not None
    index = dict(value.partition("=")[::2] for value in builder.values("ARG"))
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", index["TORCH_INDEX_URL"])
    assert '--index-url "${TORCH_INDEX_URL}"' in " ".join(builder.values("RUN"))


def test_ssb_image_is_slim_python_311_with_the_cpu_torch() -> None:
    parsed = dockerfile("ssb")
    assert parsed.global_args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert parsed.stages[-1].base == "${PYTHON_IMAGE}"
    builder = parsed.stage("builder")
    assert builder is not None
    index = dict(value.partition("=")[::2] for value in builder.values("ARG"))
    assert index["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


def test_rollout_image_installs_the_vllm_extra_unless_told_otherwise() -> None:
    builder = dockerfile("rollout").stage("builder")
    assert builder is not None
    assert "EXTRAS=vllm" in builder.values("ARG")
    assert '"$(ls /wheels/hybridrl-*.whl)${EXTRAS:+[$EXTRAS]}"' in " ".join(builder.values("RUN"))


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match, as Docker extends it: ``*`` within a segment, ``**`` across them."""
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        else:
            char = pattern[index]
            out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
            index += 1
    return re.compile(out)


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for pattern in patterns:
        regex = dockerignore_regex(pattern.removeprefix("!").rstrip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not pattern.startswith("!")
    return excluded


def test_dockerignore_keeps_what_the_builders_copy_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = set()
    for name in SERVICES:
        builder = dockerfile(name).stage("builder")
        assert builder is not None
        for value in builder.values("COPY"):
            copied.update(value.split()[:-1])
    assert copied == {
        "requirements/runtime.txt",
        "pyproject.toml",
        "README.md",
        "libs/",
        "services/",
    }
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not dockerignore_excludes(source.rstrip("/"), patterns), source
    for kept in ("libs/hybridrl/cli/__init__.py", "services/ssb/main.py"):
        assert not dockerignore_excludes(kept, patterns), kept
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        "runs/demo/metrics.jsonl",
        "tests/unit/test_dockerfiles.py",
        "requirements/dev.txt",
        "libs/hybridrl/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignore_excludes(dropped, patterns), dropped
