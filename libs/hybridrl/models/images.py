"""Images on their way into the model: PNG bytes, object-store references, pixel values.

Prompts carry images as ``ImageRef`` messages (``protos/hybridrl/v1/common.proto``): inline PNG
bytes under ``MAX_INLINE_IMAGE_BYTES``, an object-store URI above it. Rollout workers and the
reward model turn them into ``[3, H, W]`` pixel values with the same normalisation the synthetic
task uses (mean 0.5, std 0.5: pixels in [-1, 1]).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, UnidentifiedImageError

from hybridrl.proto.schema import MAX_INLINE_IMAGE_BYTES, check_image_ref
from hybridrl.proto.v1 import common_pb2

POLICY_IMAGE_MEAN = (0.5, 0.5, 0.5)
POLICY_IMAGE_STD = (0.5, 0.5, 0.5)
MAX_IMAGE_PIXELS = 4096 * 4096  # refuse decompression bombs before decoding


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """PNG bytes of an ``[H, W, 3]`` uint8 RGB array."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected [H, W, 3] uint8 pixels, got {pixels.dtype} {pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Decode image bytes (PNG, JPEG, ...) to an RGB image; ValueError when they do not decode."""
    if not data:
        raise ValueError("image bytes are empty")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"image of {width}x{height} pixels is over the limit")
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"image does not decode: {error}") from error


def inline_image_ref(png: bytes) -> common_pb2.ImageRef:
    """An ``ImageRef`` holding the bytes inline; ValueError above the inline limit."""
    if len(png) > MAX_INLINE_IMAGE_BYTES:
        raise ValueError(
            f"image of {len(png)} bytes is over the inline limit {MAX_INLINE_IMAGE_BYTES}; "
            "store it and send its URI"
        )
    ref = common_pb2.ImageRef(inline_image=common_pb2.InlineImage(data=png, mime_type="image/png"))
    check_image_ref(ref)
    return ref


def load_image_ref(ref: common_pb2.ImageRef, fetch: Callable[[str], bytes]) -> Image.Image:
    """The image an ``ImageRef`` names; ``fetch(uri)`` reads object-store references."""
    check_image_ref(ref)
    if ref.WhichOneof("source") == "uri":
        return decode_image(fetch(ref.uri))
    return decode_image(ref.inline_image.data)


def pixel_values_from_image(
    image: Image.Image | torch.Tensor,
    image_size: tuple[int, int],
    mean: Sequence[float] = POLICY_IMAGE_MEAN,
    std: Sequence[float] = POLICY_IMAGE_STD,
) -> torch.Tensor:
    """``[3, height, width]`` float32 pixel values: a PIL image is converted to RGB, resized
    (bicubic) and normalised with ``mean``/``std``; a tensor is checked and passed through."""
    height, width = image_size
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or tuple(image.shape[1:]) != (height, width):
            raise ValueError(f"image tensor must be [C, {height}, {width}], got {image.shape}")
        if not image.is_floating_point() or not bool(torch.isfinite(image).all()):
            raise ValueError("image tensor must hold finite floats")
        return image.float()
    rgb = image.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (pixels - mean_tensor) / std_tensor
