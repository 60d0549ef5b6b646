"""Claim checks: payloads too large for a Kafka message go to the object store instead.

A producer whose message would pass the broker's limit (1 MiB by default) stores the payload
here and sends a small ``ClaimCheck`` (URI, SHA-256, size) in its place; the consumer fetches
the payload and verifies the digest. Keys are content-addressed
(``{prefix}/{sha256[:2]}/{sha256}``): a redelivered or re-produced payload maps to the same
object and is not written twice, which keeps at-least-once delivery idempotent here too.
The two-character fan-out keeps any one "directory" small on file systems and listings.

Claim-check objects are never deleted by this class; a bucket lifecycle rule (or the run's
cleanup) removes them once the topics' retention has passed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from hybridrl.store.object_store import ObjectCorrupt, ObjectStore, join_key, validate_key

_logger = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ClaimCheckCorrupt(ObjectCorrupt):
    """The fetched payload's SHA-256 or size is not the one its claim check names."""


@dataclass(frozen=True)
class ClaimCheck:
    """Where an offloaded payload is, and how to recognise it: hex SHA-256 and size in bytes."""

    uri: str
    sha256: str
    size: int


class ClaimCheckStore:
    """Offloads payloads above ``threshold_bytes`` under ``prefix`` of ``store``."""

    def __init__(self, store: ObjectStore, prefix: str, threshold_bytes: int) -> None:
        if isinstance(threshold_bytes, bool) or not isinstance(threshold_bytes, int):
            raise ValueError(f"threshold_bytes must be an int, got {threshold_bytes!r}")
        if threshold_bytes < 0:
            raise ValueError(f"threshold_bytes must be >= 0, got {threshold_bytes}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self._store = store
        self._prefix = prefix
        self._threshold = threshold_bytes

    @property
    def threshold_bytes(self) -> int:
        return self._threshold

    def __repr__(self) -> str:
        return (
            f"ClaimCheckStore({self._store.uri(self._prefix + '/' if self._prefix else '')!r}, "
            f"threshold_bytes={self._threshold})"
        )

    def should_offload(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes goes to the object store (size > threshold)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        return size > self._threshold

    def key_for(self, sha256: str) -> str:
        """The content address of a payload with hex digest ``sha256``."""
        _check_digest(sha256)
        return join_key(self._prefix, sha256[:2], sha256)

    def offload(self, payload: bytes, key_hint: str = "") -> ClaimCheck:
        """Store ``payload`` (unless the same bytes are stored already) and return its check.

        ``key_hint`` (say, the Kafka key) only labels the log line: the object's key must
        depend on the content alone, so that equal payloads share one object.
        """
        sha256 = hashlib.sha256(payload).hexdigest()
        key = self.key_for(sha256)
        if self._store.exists(key):
            _logger.debug("claim check for %r already stored at %s", key_hint, key)
        else:
            self._store.put_bytes(key, payload)
            _logger.debug("offloaded %d bytes for %r to %s", len(payload), key_hint, key)
        return ClaimCheck(uri=self._store.uri(key), sha256=sha256, size=len(payload))

    def fetch(self, uri: str, sha256: str) -> bytes:
        """The payload at ``uri``, verified against ``sha256``.

        ``ValueError`` when ``uri`` is not a claim check of this store, ``ObjectNotFound``
        when the object is gone, ``ClaimCheckCorrupt`` when the bytes do not hash to
        ``sha256``.
        """
        _check_digest(sha256)
        base = self._store.uri(self._prefix + "/" if self._prefix else "")
        if not uri.startswith(base):
            raise ValueError(f"{uri!r} is not a claim check under {base!r}")
        payload = self._store.get_bytes(join_key(self._prefix, uri.removeprefix(base)))
        actual = hashlib.sha256(payload).hexdigest()
        if actual != sha256:
            raise ClaimCheckCorrupt(
                f"{uri}: payload of {len(payload)} bytes has SHA-256 {actual}, expected {sha256}"
            )
        return payload


def _check_digest(sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
