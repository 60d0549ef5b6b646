"""PromptEncoder: text and image references to token ids and pixel values, or a clear error."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hybridrl.models.images import encode_png, inline_image_ref
from hybridrl.proto.v1 import common_pb2
from hybridrl.rollout.policy_source import LoadedPolicy
from hybridrl.rollout.prompt_inputs import ObjectReader, PromptEncoder
from hybridrl.store import ObjectNotFound
from hybridrl.tasks.visual_reasoning import generate_prompts

BOS_ID = 1
IMAGE_TOKEN_ID = 4


def test_image_prompt_starts_with_sixteen_placeholders_and_carries_the_task_pixels(
    encoder: PromptEncoder,
) -> None:
    task = generate_prompts(1, seed=0)[0]
    inputs = encoder.encode(task.question, [inline_image_ref(encode_png(task.image))])
    assert inputs.token_ids[:17] == [BOS_ID] + [IMAGE_TOKEN_ID] * 16
    assert inputs.pixel_values is not None
    assert torch.allclose(inputs.pixel_values, torch.from_numpy(task.pixel_values()), atol=1e-6)


def test_text_prompt_has_no_placeholders_and_no_pixels(
    encoder: PromptEncoder, policy: LoadedPolicy
) -> None:
    inputs = encoder.encode("2+3?", [])
    assert inputs.pixel_values is None
    assert inputs.token_ids == [BOS_ID, *policy.tokenizer.encode("2+3?\nAnswer: ")]


def test_image_by_uri_is_read_through_the_object_reader(
    policy: LoadedPolicy, tmp_path: Path
) -> None:
    pixels = np.full((8, 8, 3), 255, dtype=np.uint8)
    (tmp_path / "white.png").write_bytes(encode_png(pixels))
    encoder = PromptEncoder.for_model(policy.tokenizer, policy.config, ObjectReader(None))
    uri = (tmp_path / "white.png").as_uri()
    inputs = encoder.encode("colour?", [common_pb2.ImageRef(uri=uri)])
    assert inputs.pixel_values is not None
    assert torch.allclose(inputs.pixel_values, torch.ones(3, 32, 32))
    with pytest.raises(ValueError, match="does not exist"):
        encoder.encode("colour?", [common_pb2.ImageRef(uri=(tmp_path / "gone.png").as_uri())])


def test_object_reader_reports_a_missing_object() -> None:
    with pytest.raises(ObjectNotFound):
        ObjectReader(None)("file:///nonexistent-hybridrl-dir/image.png")


@pytest.mark.parametrize(
    ("text", "images", "message"),
    [
        ("", [], "the prompt is empty"),
        (" \n", [], "the prompt is empty"),
        ("q", [common_pb2.ImageRef(uri="s3://bucket/a.png")], "none is configured"),
        ("q", [common_pb2.ImageRef()], "neither uri nor inline_image"),
        (
            "q",
            [
                common_pb2.ImageRef(
                    inline_image=common_pb2.InlineImage(data=b"GIF89a?", mime_type="image/gif")
                )
            ],
            "image does not decode",
        ),
    ],
)
def test_prompts_no_retry_can_fix_raise_value_error(
    encoder: PromptEncoder, text: str, images: list[common_pb2.ImageRef], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encoder.encode(text, images)
