import numpy as np
import pytest

from hybridrl.tasks.visual_reasoning import (
    IMAGE_SIZE,
    TASK_KINDS,
    generate_prompts,
    reference_response,
)


def test_same_seed_gives_identical_prompts_and_pixels() -> None:
    first = generate_prompts(12, seed=7)
    second = generate_prompts(12, seed=7)
    assert [p.prompt_id for p in first] == [p.prompt_id for p in second]
    assert [p.answer for p in first] == [p.answer for p in second]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_kinds_cycle_and_ids_carry_split_and_seed() -> None:
    prompts = generate_prompts(8, seed=3, split="eval")
    assert [p.kind for p in prompts] == list(TASK_KINDS) * 2
    assert prompts[5].prompt_id == "eval-3-000005"


def test_counting_answer_matches_the_number_of_drawn_squares() -> None:
    for prompt in generate_prompts(40, seed=11, kinds=["counting"]):
        lit = prompt.image.any(axis=2)
        # squares sit in distinct 8x8 cells, so lit cells = shapes
        cells = lit.reshape(4, 8, 4, 8).any(axis=(1, 3))
        assert int(cells.sum()) == int(prompt.answer)


def test_position_answer_matches_the_side_of_the_shape() -> None:
    for prompt in generate_prompts(40, seed=5, kinds=["position"]):
        columns = np.nonzero(prompt.image.any(axis=(0, 2)))[0]
        on_left = columns.max() < IMAGE_SIZE // 2
        on_right = columns.min() >= IMAGE_SIZE // 2
        assert on_left != on_right  # wholly on one side
        assert prompt.answer == ("left" if on_left else "right")


def test_colour_answer_letter_names_the_drawn_colour() -> None:
    expected = {"A": (230, 40, 40), "B": (40, 200, 60), "C": (50, 80, 230), "D": (235, 215, 40)}
    for prompt in generate_prompts(20, seed=2, kinds=["colour"]):
        lit = prompt.image[prompt.image.any(axis=2)]
        assert tuple(int(v) for v in lit[0]) == expected[prompt.answer]


def test_digit_sum_answers_lie_in_range_and_hint_names_the_digits() -> None:
    for prompt in generate_prompts(30, seed=9, kinds=["digit_sum"]):
        first, second = (int(w) for w in prompt.hint.rstrip(".").split() if w.isdigit())
        assert int(prompt.answer) == first + second


def test_pixel_values_are_channel_first_in_unit_range() -> None:
    prompt = generate_prompts(1, seed=0)[0]
    pixels = prompt.pixel_values()
    assert pixels.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert pixels.dtype == np.float32
    assert pixels.min() >= -1.0
    assert pixels.max() <= 1.0


def test_reference_response_uses_the_r1_template() -> None:
    prompt = generate_prompts(1, seed=0, kinds=["digit_sum"])[0]
    text = reference_response(prompt)
    assert text.startswith("<think>")
    assert text.endswith(f"\\boxed{{{prompt.answer}}}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count"),
        ({"count": 1, "kinds": []}, "kinds"),
        ({"count": 1, "kinds": ["nope"]}, "unknown"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    count = kwargs.pop("count")
    with pytest.raises(ValueError, match=message):
        generate_prompts(count, seed=0, **kwargs)
