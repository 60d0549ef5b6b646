"""``hybridrl learner submit|status`` against a fake Kubernetes API server.

No Kubernetes API server can run on this machine, so ``FakeKubernetesApi`` stands in for one:
a small HTTP server on loopback that speaks only the kubeflow.org/v1 ``pytorchjobs`` endpoints
the Kubeflow SDK's TrainingClient calls (create and get), with a kubeconfig pointing at it.
Everything on the client side (TrainingClient, the Kubernetes client, the CLI) is real.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hybridrl.cli import app
from hybridrl.k8s import (
    LearnerJobSpec,
    build_learner_pytorchjob,
    pytorchjob_from_dict,
    pytorchjob_to_dict,
)

COLLECTION = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs$")
ITEM = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs/([^/?]+)$")
TOKEN = "fake-token"


class FakeKubernetesApi:
    """A fake API server: stores created PyTorchJobs; each GET of one returns the next of the
    scripted ``statuses`` (the last one repeats)."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read ``api.requests`` instead."""

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
                self._reply(code, {**body, "reason": reason, "message": message, "code": code})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                api.requests.append(("POST", self.path, self.headers["Authorization"]))
                match = COLLECTION.match(self.path)
                if match is None:
                    self._status(404, "NotFound", self.path)
                    return
                job = json.loads(body)
                key = (match[1], job["metadata"]["name"])
                if key in api.jobs:
                    self._status(409, "AlreadyExists", f'pytorchjobs "{key[1]}" already exists')
                    return
                job["metadata"]["namespace"] = match[1]
                job["metadata"]["uid"] = "0f1e2d3c-0000-4000-8000-000000000001"
                api.jobs[key] = job
                self._reply(201, job)

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path, self.headers["Authorization"]))
                match = ITEM.match(self.path)
                job = api.jobs.get((match[1], match[2])) if match else None
                if job is None:
                    self._status(404, "NotFound", f"{self.path} not found")
                    return
                if api.statuses:
                    job["status"] = (
                        api.statuses.pop(0) if len(api.statuses) > 1 else api.statuses[0]
                    )
                self._reply(200, job)

        return Handler

    def gets(self) -> int:
        return sum(1 for method, _, _ in self.requests if method == "GET")


@pytest.fixture
def api() -> Iterator[FakeKubernetesApi]:
    fake = FakeKubernetesApi()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def kubeconfig(api: FakeKubernetesApi, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": "ml"}}
        ],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def run(*arguments: str) -> Any:
    return CliRunner().invoke(app, ["learner", *arguments], env={"COLUMNS": "200"})


def status(kind: str, replicas: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    conditions = [{"type": "Created", "status": "True"}]
    if kind != "Created":
        conditions.append({"type": kind, "status": "True", "reason": f"PyTorchJob{kind}"})
    return {"conditions": conditions, "replicaStatuses": replicas or {}}


def test_dry_run_prints_the_job_submit_would_create() -> None:
    result = run(
        "submit", "--dry-run", "--release", "team-a", "--workers", "2", "--gpus", "2",
        "--nproc-per-node", "2", "--launcher", "deepspeed", "--object-store-secret", "s3",
        "-n", "research",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = LearnerJobSpec(
        release="team-a",
        namespace="research",
        workers=2,
        gpus_per_node=2,
        nproc_per_node=2,
        launcher="deepspeed",
        object_store_secret={"name": "s3"},
    )
    assert pytorchjob_from_dict(yaml.safe_load(result.stdout)) == build_learner_pytorchjob(expected)


def test_dry_run_rejects_more_ranks_than_gpus() -> None:
    result = run("submit", "--dry-run", "--gpus", "2", "--nproc-per-node", "1")
    assert result.exit_code == 2
    assert "nproc_per_node (1) must equal gpus_per_node (2)" in result.output


def test_submit_creates_the_job_in_the_contexts_namespace(
    api: FakeKubernetesApi, kubeconfig: Path
) -> None:
    result = run("submit", "--kubeconfig", str(kubeconfig), "--gpus", "1")
    assert result.exit_code == 0, result.output
    assert "created pytorchjob ml/hybridrl-learner" in result.output
    assert api.requests == [
        ("POST", "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs", f"Bearer {TOKEN}")
    ]
    sent = api.jobs[("ml", "hybridrl-learner")]
    built = pytorchjob_to_dict(build_learner_pytorchjob(LearnerJobSpec(gpus_per_node=1)))
    built["metadata"]["namespace"] = "ml"
    assert {**sent, "metadata": {**sent["metadata"], "uid": None}} == {
        **built,
        "metadata": {**built["metadata"], "uid": None},
    }


def test_submitting_an_existing_job_reports_the_api_error(
    api: FakeKubernetesApi, kubeconfig: Path
) -> None:
    assert run("submit", "--kubeconfig", str(kubeconfig), "-n", "ml").exit_code == 0
    result = run("submit", "--kubeconfig", str(kubeconfig), "-n", "ml")
    assert result.exit_code == 1
    assert "Failed to create PyTorchJob: ml/hybridrl-learner" in result.output
    assert "already exists" in result.output


def test_status_shows_the_state_and_the_pods(api: FakeKubernetesApi, kubeconfig: Path) -> None:
    assert run("submit", "--kubeconfig", str(kubeconfig)).exit_code == 0
    api.statuses = [status("Running", {"Master": {"active": 1}, "Worker": {"active": 1}})]
    result = run("status", "hybridrl-learner", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0, result.output
    assert "state Running; pods: Master 1 active, Worker 1 active" in result.output
    assert "PyTorchJobRunning" in result.output
    assert api.gets() == 1


@pytest.mark.parametrize(("final", "exit_code"), [("Succeeded", 0), ("Failed", 1)])
def test_follow_polls_until_the_job_ends(
    api: FakeKubernetesApi, kubeconfig: Path, final: str, exit_code: int
) -> None:
    assert run("submit", "--kubeconfig", str(kubeconfig), "-n", "ml").exit_code == 0
    api.statuses = [status("Created"), status("Running"), status("Running"), status(final)]
    result = run(
        "status", "hybridrl-learner", "--kubeconfig", str(kubeconfig), "-n", "ml",
        "--follow", "--interval", "0.01",
    )  # fmt: skip
    assert result.exit_code == exit_code, result.output
    assert api.gets() == 4
    changes = [line for line in result.output.splitlines() if line.startswith("hybridrl-learner:")]
    assert changes == [
        "hybridrl-learner: Created (no pods yet)",
        "hybridrl-learner: Running (no pods yet)",
        f"hybridrl-learner: {final} (no pods yet)",
    ]
    assert f"state {final}" in result.output


def test_status_of_a_missing_job_fails(api: FakeKubernetesApi, kubeconfig: Path) -> None:
    result = run("status", "nothing-here", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 1
    assert "error: Failed to get PyTorchJob: ml/nothing-here" in result.output


def test_an_unknown_context_is_a_clean_error(api: FakeKubernetesApi, kubeconfig: Path) -> None:
    result = run("status", "x", "--kubeconfig", str(kubeconfig), "--context", "elsewhere")
    assert result.exit_code == 1
    assert "error: no usable Kubernetes configuration" in result.output
    assert "'elsewhere'" in result.output
    assert api.requests == []
