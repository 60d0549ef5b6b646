"""Version and size rules of the hybridrl.v1 message contract, checked at every boundary.

Every message that travels on its own (Kafka events, gRPC requests and responses, claim-check
payloads in the object store) carries ``schema_version`` as field 1. Producers set it to
``SCHEMA_VERSION``; consumers call ``check_schema_version`` right after decoding and send a
message that fails it to the dead-letter topic (or answer INVALID_ARGUMENT over gRPC), so a
producer built from another contract never feeds the loop silently.

Images travel inline only when small (``MAX_INLINE_IMAGE_BYTES``): a prompt's images are
copied into each of its N rollouts, and Kafka rejects records over its size limit (1 MiB by
default). Larger images go to the object store and travel as URIs.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from google.protobuf.message import Message

from hybridrl.proto.v1 import common_pb2

SCHEMA_VERSION: Final[int] = 1
"""Version of the hybridrl.v1 contract this code writes and accepts. Raise it when a change
makes old readers misread new messages (a changed meaning, not an added field)."""

MAX_INLINE_IMAGE_BYTES: Final[int] = 128 * 1024
"""Largest encoded image, in bytes, that may travel inline in an ImageRef. With a few such
images a rollout event, copied N times per prompt, stays well under Kafka's 1 MiB default."""

_SCHEMA_VERSION_FIELD: Final[str] = "schema_version"


def check_schema_version(message: Message) -> None:
    """Raise ValueError unless ``message.schema_version`` equals ``SCHEMA_VERSION``.

    A zero version means the producer never set it (proto3 decodes a missing field as 0);
    any other version is a contract this code does not know how to read.
    """
    descriptor = message.DESCRIPTOR
    field = descriptor.fields_by_name.get(_SCHEMA_VERSION_FIELD)
    if field is None:
        raise ValueError(f"{descriptor.full_name} has no schema_version field to check")
    version = getattr(message, field.name)
    if version == 0:
        raise ValueError(
            f"{descriptor.full_name}.schema_version is 0 (unset): the producer must set it "
            f"to {SCHEMA_VERSION}"
        )
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{descriptor.full_name}.schema_version is {version}, but this code reads "
            f"version {SCHEMA_VERSION} only"
        )


def check_image_ref(image: common_pb2.ImageRef) -> None:
    """Raise ValueError unless ``image`` names a usable image source.

    A URI needs a scheme (``s3://bucket/key``); an inline image needs non-empty data of at
    most ``MAX_INLINE_IMAGE_BYTES`` bytes and an ``image/*`` mime type.
    """
    source = image.WhichOneof("source")
    if source is None:
        raise ValueError("ImageRef has neither uri nor inline_image set")
    if source == "uri":
        if not urlsplit(image.uri).scheme:
            raise ValueError(f"ImageRef.uri {image.uri!r} has no scheme (expected e.g. s3://)")
        return
    inline = image.inline_image
    if not inline.data:
        raise ValueError("ImageRef.inline_image.data is empty")
    if len(inline.data) > MAX_INLINE_IMAGE_BYTES:
        raise ValueError(
            f"ImageRef.inline_image.data is {len(inline.data)} bytes, over the inline limit of "
            f"{MAX_INLINE_IMAGE_BYTES}; store the image and pass its URI instead"
        )
    if not inline.mime_type.startswith("image/"):
        raise ValueError(
            f"ImageRef.inline_image.mime_type {inline.mime_type!r} is not an image/* type"
        )
