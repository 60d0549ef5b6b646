"""KafkaSettings: validated at start-up, mapped to kafka-python's names, password kept secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from hybridrl.config.kafka import KafkaSettings, SaslMechanism, SecurityProtocol

PASSWORD = "s3cr3t-Pa55"


def sasl_settings() -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="kafka-0.kafka:9093, kafka-1.kafka:9093",
        client_id="reward",
        security_protocol=SecurityProtocol.SASL_SSL,
        sasl_mechanism=SaslMechanism.SCRAM_SHA_512,
        sasl_username="hybridrl",
        sasl_password=PASSWORD,  # type: ignore[arg-type]
        ssl_cafile=Path("/etc/kafka/ca.pem"),
    )


def test_defaults_map_to_kafka_python_names() -> None:
    assert KafkaSettings().to_kafka_python_kwargs() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "client_id": "hybridrl",
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 30_000,
        "retry_backoff_ms": 100,
        "reconnect_backoff_max_ms": 1_000,
    }


def test_producer_and_consumer_kwargs_carry_the_limits() -> None:
    settings = KafkaSettings(max_message_bytes=2 * 1024 * 1024, linger_ms=20)
    producer = settings.producer_kwargs()
    assert {
        key: producer[key] for key in ("max_request_size", "linger_ms", "delivery_timeout_ms")
    } == {
        "max_request_size": 2_097_152,
        "linger_ms": 20,
        "delivery_timeout_ms": 120_000,
    }
    consumer = settings.consumer_kwargs()
    assert consumer["max_partition_fetch_bytes"] == 2_097_152 + 1024
    assert consumer["session_timeout_ms"] == 45_000
    assert consumer["heartbeat_interval_ms"] == 3_000


def test_sasl_ssl_settings_map_credentials_and_files() -> None:
    kwargs = sasl_settings().to_kafka_python_kwargs()
    assert kwargs["bootstrap_servers"] == ["kafka-0.kafka:9093", "kafka-1.kafka:9093"]
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "hybridrl"
    assert kwargs["sasl_plain_password"] == PASSWORD
    assert kwargs["ssl_cafile"] == "/etc/kafka/ca.pem"


def test_the_password_shows_in_no_repr_str_dump_or_log(caplog: pytest.LogCaptureFixture) -> None:
    settings = sasl_settings()
    logger = logging.getLogger("hybridrl.test")
    with caplog.at_level(logging.DEBUG, logger="hybridrl.test"):
        logger.info("kafka settings %s / %r", settings, settings)
    views = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        caplog.text,
    ]
    assert "kafka settings" in caplog.text
    for view in views:
        assert PASSWORD not in view
    assert "**********" in settings.model_dump_json()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, "needs sasl_mechanism, sasl_username"),
        ({"sasl_username": "u", "sasl_password": "p"}, "SASL credentials are set"),
        ({"ssl_cafile": "/ca.pem"}, "ssl_\\* files are set"),
        ({"security_protocol": "SSL", "ssl_certfile": "/c.pem"}, "go together"),
        ({"bootstrap_servers": " , "}, "bootstrap_servers is empty"),
        ({"bootstrap_servers": "kafka:notaport"}, "is not host:port"),
        ({"heartbeat_interval_ms": 10_000, "session_timeout_ms": 6_000}, "must be below"),
        ({"delivery_timeout_ms": 10_000, "request_timeout_ms": 30_000}, "at least linger_ms"),
        ({"max_message_bytes": 0}, "greater than 0"),
        ({"bootstrap_server": "typo:9092"}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_settings_fail_at_start_up(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**fields)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = KafkaSettings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.client_id = "other"


def test_bootstrap_servers_are_normalised() -> None:
    settings = KafkaSettings(bootstrap_servers=" a:1 ,b:2,")
    assert settings.bootstrap_servers == "a:1,b:2"
    assert settings.bootstrap_server_list == ["a:1", "b:2"]
