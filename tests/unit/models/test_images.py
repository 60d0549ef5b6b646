"""Images from PNG bytes and object-store references to pixel values."""

import numpy as np
import pytest
import torch

from hybridrl.models.images import (
    decode_image,
    encode_png,
    inline_image_ref,
    load_image_ref,
    pixel_values_from_image,
)
from hybridrl.proto.schema import MAX_INLINE_IMAGE_BYTES
from hybridrl.proto.v1 import common_pb2
from hybridrl.tasks.visual_reasoning import generate_prompts


def test_png_round_trip_gives_the_task_pixel_values_exactly() -> None:
    prompt = generate_prompts(1, seed=4)[0]
    image = decode_image(encode_png(prompt.image))
    pixels = pixel_values_from_image(image, (32, 32))
    torch.testing.assert_close(pixels, torch.from_numpy(prompt.pixel_values()), rtol=0, atol=1e-6)


def test_inline_and_uri_references_load_the_same_image() -> None:
    png = encode_png(np.full((8, 8, 3), 200, dtype=np.uint8))
    inline = load_image_ref(inline_image_ref(png), fetch=lambda uri: b"")
    by_uri = load_image_ref(
        common_pb2.ImageRef(uri="s3://bucket/img.png"), fetch={"s3://bucket/img.png": png}.get
    )
    assert np.array_equal(np.asarray(inline), np.asarray(by_uri))
    assert np.asarray(inline)[0, 0].tolist() == [200, 200, 200]


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_bytes_that_do_not_decode_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="image"):
        decode_image(data)


def test_inline_reference_over_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="inline limit"):
        inline_image_ref(b"\x00" * (MAX_INLINE_IMAGE_BYTES + 1))


def test_larger_images_are_resized_to_the_encoder_size() -> None:
    image = decode_image(encode_png(np.zeros((64, 48, 3), dtype=np.uint8)))
    pixels = pixel_values_from_image(image, (32, 32))
    assert pixels.shape == (3, 32, 32)
    assert float(pixels.max()) == -1.0
