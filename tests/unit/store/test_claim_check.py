"""ClaimCheckStore: content-addressed offload of large payloads and verified fetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridrl.store import (
    ClaimCheck,
    ClaimCheckCorrupt,
    ClaimCheckStore,
    LocalObjectStore,
    ObjectNotFound,
)

# hashlib.sha256(b"abc"): the FIPS 180-2 test vector.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


class CountingStore(LocalObjectStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0

    def put_bytes(self, key: str, data: bytes) -> None:
        self.puts += 1
        super().put_bytes(key, data)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "bucket")


@pytest.fixture
def claims(store: CountingStore) -> ClaimCheckStore:
    return ClaimCheckStore(store, "claims/rollouts", threshold_bytes=1024)


def test_should_offload_only_above_the_threshold(claims: ClaimCheckStore) -> None:
    assert not claims.should_offload(0)
    assert not claims.should_offload(1024)
    assert claims.should_offload(1025)
    with pytest.raises(ValueError, match="size"):
        claims.should_offload(-1)


def test_offload_stores_the_payload_under_its_content_address(
    claims: ClaimCheckStore, store: CountingStore
) -> None:
    check = claims.offload(b"abc", key_hint="group-7")
    key = f"claims/rollouts/ba/{SHA256_ABC}"
    assert check == ClaimCheck(uri=store.uri(key), sha256=SHA256_ABC, size=3)
    assert store.get_bytes(key) == b"abc"


def test_a_redelivered_payload_is_written_once(
    claims: ClaimCheckStore, store: CountingStore
) -> None:
    first = claims.offload(b"abc", key_hint="group-7")
    second = claims.offload(b"abc", key_hint="group-7 again")
    assert first == second
    assert store.puts == 1
    assert [info.key for info in store.list()] == [f"claims/rollouts/ba/{SHA256_ABC}"]


def test_fetch_returns_the_verified_payload(claims: ClaimCheckStore) -> None:
    payload = bytes(range(256)) * 8
    check = claims.offload(payload)
    assert claims.fetch(check.uri, check.sha256) == payload


def test_fetch_with_another_digest_is_corrupt(claims: ClaimCheckStore) -> None:
    check = claims.offload(b"abc")
    with pytest.raises(ClaimCheckCorrupt, match=f"has SHA-256 {SHA256_ABC}, expected 00"):
        claims.fetch(check.uri, "00" * 32)


def test_fetch_of_an_altered_object_is_corrupt(
    claims: ClaimCheckStore, store: CountingStore
) -> None:
    check = claims.offload(b"abc")
    store.put_bytes(f"claims/rollouts/ba/{SHA256_ABC}", b"abd")
    with pytest.raises(ClaimCheckCorrupt, match="3 bytes"):
        claims.fetch(check.uri, check.sha256)


def test_fetch_of_a_deleted_payload_is_object_not_found(
    claims: ClaimCheckStore, store: CountingStore
) -> None:
    check = claims.offload(b"abc")
    store.delete(f"claims/rollouts/ba/{SHA256_ABC}")
    with pytest.raises(ObjectNotFound):
        claims.fetch(check.uri, check.sha256)


def test_fetch_refuses_a_uri_outside_the_claim_check_prefix(
    claims: ClaimCheckStore, store: CountingStore
) -> None:
    with pytest.raises(ValueError, match="not a claim check under"):
        claims.fetch(store.uri(f"checkpoints/ba/{SHA256_ABC}"), SHA256_ABC)
    with pytest.raises(ValueError, match="not a claim check under"):
        claims.fetch(f"s3://bucket/claims/rollouts/ba/{SHA256_ABC}", SHA256_ABC)


@pytest.mark.parametrize("digest", ["", "abc", SHA256_ABC.upper(), SHA256_ABC + "0"])
def test_malformed_digest_is_refused(claims: ClaimCheckStore, digest: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        claims.fetch(claims.offload(b"abc").uri, digest)


@pytest.mark.parametrize("threshold", [-1, 1.5, True])
def test_bad_threshold_is_refused(store: CountingStore, threshold: int) -> None:
    with pytest.raises(ValueError, match="threshold_bytes"):
        ClaimCheckStore(store, "claims", threshold_bytes=threshold)


def test_without_prefix_keys_start_at_the_fan_out(store: CountingStore) -> None:
    check = ClaimCheckStore(store, "", threshold_bytes=0).offload(b"abc")
    assert check.uri == store.uri(f"ba/{SHA256_ABC}")
