"""ImageRef checks: a URI needs a scheme; inline images must be small, non-empty images."""

from __future__ import annotations

import pytest

from hybridrl.proto.schema import MAX_INLINE_IMAGE_BYTES, check_image_ref
from hybridrl.proto.v1 import common_pb2


def _inline(data: bytes, mime_type: str = "image/png") -> common_pb2.ImageRef:
    return common_pb2.ImageRef(inline_image=common_pb2.InlineImage(data=data, mime_type=mime_type))


def test_inline_limit_is_128_kib() -> None:
    assert MAX_INLINE_IMAGE_BYTES == 131_072


def test_object_store_uri_is_accepted() -> None:
    check_image_ref(common_pb2.ImageRef(uri="s3://prompts/images/0001.png"))


def test_inline_image_exactly_at_the_limit_is_accepted() -> None:
    check_image_ref(_inline(b"\x00" * MAX_INLINE_IMAGE_BYTES))


def test_inline_image_one_byte_over_the_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="131073 bytes, over the inline limit of 131072"):
        check_image_ref(_inline(b"\x00" * (MAX_INLINE_IMAGE_BYTES + 1)))


def test_empty_image_ref_is_rejected() -> None:
    with pytest.raises(ValueError, match="neither uri nor inline_image"):
        check_image_ref(common_pb2.ImageRef())


def test_uri_without_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no scheme"):
        check_image_ref(common_pb2.ImageRef(uri="prompts/images/0001.png"))


def test_empty_inline_data_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"inline_image\.data is empty"):
        check_image_ref(_inline(b""))


def test_non_image_mime_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="'text/plain' is not an image/\\* type"):
        check_image_ref(_inline(b"\x89PNG", mime_type="text/plain"))
