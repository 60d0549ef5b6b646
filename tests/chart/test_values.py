"""values.yaml and values.schema.json: documented, free of secrets, strict about bad input.

Also the checks no schema can make (the template's own ``fail`` messages) and the
NetworkPolicies that follow from the values.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python
import pytest
import yaml

from .conftest import CHART_DIR, RELEASE, Rendered, render

VALUES_FILE = CHART_DIR / "values.yaml"
SENSITIVE = re.compile(r"password|secret|token|accesskey|credential", re.IGNORECASE)
# Names of Secrets and of keys inside them are references, not secrets.
REFERENCE = re.compile(r"(existingSecret|Key|Name|pullSecrets)$")


def leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        found = []
        for key, value in node.items():
            found.extend(leaves(value, f"{path}.{key}" if path else key))
        return found
    return [(path, node)]


def test_every_value_is_documented() -> None:
    text = VALUES_FILE.read_text()
    documented = set(re.findall(r"^\s*## @param (\S+) ", text, re.MULTILINE))
    values = yaml.safe_load(text)
    undocumented = [
        path
        for path, _ in leaves(values)
        if not any(path == doc or path.startswith(f"{doc}.") for doc in documented)
    ]
    assert undocumented == []
    stale = [
        doc
        for doc in documented
        if not any(p == doc or p.startswith(f"{doc}.") for p, _ in leaves(values))
    ]
    assert stale == []


def test_values_hold_no_secret() -> None:
    values = yaml.safe_load(VALUES_FILE.read_text())
    for path, value in leaves(values):
        name = path.rsplit(".", 1)[-1]
        if SENSITIVE.search(name) and not REFERENCE.search(name):
            assert value in ("", None, False), f"{path} holds a value; name a Secret instead"


def test_chart_defaults_are_the_values_file(chart: helm_python.Chart) -> None:
    assert chart.values == yaml.safe_load(VALUES_FILE.read_text())
    assert chart.metadata["appVersion"] == "0.1.0"
    assert chart.metadata["kubeVersion"] == ">=1.27.0-0"
    assert chart.schema is not None
    assert chart.schema["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rollout": {"replicas": "two"}}, "at '/rollout/replicas': got string, want integer"),
        ({"rollout": {"replica": 2}}, "at '/rollout': additional properties 'replica' not allowed"),
        ({"learnr": {"enabled": False}}, "additional properties 'learnr' not allowed"),
        ({"learner": {"launcher": "mpirun"}}, "at '/learner/launcher': value must be one of"),
        ({"kafka": {"security": {"protocol": "SASL"}}}, "at '/kafka/security/protocol'"),
        ({"objectStore": {"bucket": "Bad_Bucket"}}, "at '/objectStore/bucket'"),
        ({"dev": {"kafka": {"image": {"tag": 4}}}}, "at '/dev/kafka/image/tag'"),
        ({"learner": {"workers": -1}}, "at '/learner/workers'"),
        (
            {"learner": {"trainJob": {"runtime": {"kind": "Runtime"}}}},
            "at '/learner/trainJob/runtime/kind': value must be one of",
        ),
        (
            {"learner": {"trainJob": {"runtimeName": "deepspeed-distributed"}}},
            "additional properties 'runtimeName' not allowed",
        ),
    ],
)
def test_schema_rejects_bad_values(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(message)):
        chart.validate_schema(values)
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(message)):
        chart.render(values=values, name=RELEASE)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"rollout": {"autoscaling": {"keda": {"enabled": True}, "hpa": {"enabled": True}}}},
            "enable keda or hpa, not both",
        ),
        (
            {"kafka": {"security": {"protocol": "SASL_SSL"}}, "topics": {"create": False}},
            "kafka.security.sasl.mechanism is required with kafka.security.protocol SASL_SSL",
        ),
        (
            {"kafka": {"security": {"protocol": "SSL"}}},
            "topics.create needs a PLAINTEXT broker",
        ),
        (
            {
                "kafka": {"security": {"protocol": "SSL"}},
                "topics": {"create": False},
                "rollout": {"autoscaling": {"keda": {"enabled": True}}},
            },
            "rollout.autoscaling.keda.triggerAuthenticationName is required",
        ),
        (
            {"learner": {"api": "trainjob", "trainJob": {"runtime": {"create": False}}}},
            "learner.trainJob.runtime.name is required with learner.trainJob.runtime.create=false",
        ),
    ],
)
def test_inconsistent_values_fail_with_the_reason(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        chart.render(values=values, name=RELEASE)


def ingress_rules(rendered: Rendered, name: str) -> list[dict[str, Any]]:
    policy = rendered.get("NetworkPolicy", name)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules: list[dict[str, Any]] = policy["spec"].get("ingress", [])
    return rules


def test_network_policies_allow_only_the_loops_flows(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["defaults"]
    instance = {"app.kubernetes.io/name": "hybridrl", "app.kubernetes.io/instance": RELEASE}
    deny = rendered.get("NetworkPolicy", f"{RELEASE}-default-deny")
    assert deny["spec"] == {"podSelector": {"matchLabels": instance}, "policyTypes": ["Ingress"]}
    learner_pods = {
        "podSelector": {"matchLabels": {**instance, "app.kubernetes.io/component": "learner"}}
    }
    assert ingress_rules(rendered, f"{RELEASE}-ssb") == [
        {"ports": [{"port": "grpc", "protocol": "TCP"}], "from": [learner_pods]}
    ]
    (between_ranks, status) = ingress_rules(rendered, f"{RELEASE}-learner")
    assert between_ranks == {"from": [learner_pods]}
    assert status["ports"] == [{"port": 50054, "protocol": "TCP"}]
    (reward,) = ingress_rules(rendered, f"{RELEASE}-reward")
    assert reward["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert reward["from"][1] == {"podSelector": {}}
    with pytest.raises(KeyError):
        rendered.get("NetworkPolicy", f"{RELEASE}-rollout")
    dev = rendered_sets["dev"]
    for component, port in (("kafka", "kafka"), ("minio", "s3")):
        (rule,) = ingress_rules(dev, f"{RELEASE}-{component}")
        assert rule == {
            "ports": [{"port": port, "protocol": "TCP"}],
            "from": [{"podSelector": {"matchLabels": instance}}],
        }


def test_reward_clients_are_configurable(chart: helm_python.Chart) -> None:
    clients = {"namespaceSelector": {"matchLabels": {"team": "eval"}}, "podSelector": None}
    rendered = render(chart, "clients", {"networkPolicy": {"rewardClients": clients}})
    (rule,) = ingress_rules(rendered, f"{RELEASE}-reward")
    assert rule["from"][1] == {"namespaceSelector": {"matchLabels": {"team": "eval"}}}
    none = {"namespaceSelector": None, "podSelector": None}
    rendered = render(chart, "none", {"networkPolicy": {"rewardClients": none}})
    (rule,) = ingress_rules(rendered, f"{RELEASE}-reward")
    assert len(rule["from"]) == 1


def test_dev_minio_credentials_are_generated_not_configured(
    rendered_sets: dict[str, Rendered],
) -> None:
    (secret,) = rendered_sets["dev"].of_kind("Secret")
    assert secret["metadata"]["name"] == f"{RELEASE}-minio"
    assert secret["metadata"]["annotations"]["hybridrl.io/purpose"].startswith("dev-only")
    assert set(secret["data"]) == {"accessKey", "secretKey"}
    values_text = VALUES_FILE.read_text()
    assert all(value not in values_text for value in secret["data"].values())
    assert not rendered_sets["defaults"].of_kind("Secret")
