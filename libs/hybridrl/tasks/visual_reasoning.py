"""A synthetic visual reasoning task whose images are drawn in code.

This is the data the local run trains on: counting shapes, naming a colour (multiple choice),
telling left from right, and adding two digits drawn in the image. Every answer is checked by
the rule reward (``hybridrl.rewards.rule_reward``), so the task needs no reward model and no
download. Generation is deterministic in ``seed``: the same call gives the same prompts, pixel
for pixel, on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

TaskKind = Literal["counting", "colour", "position", "digit_sum"]
TASK_KINDS: Final[tuple[TaskKind, ...]] = ("counting", "colour", "position", "digit_sum")

IMAGE_SIZE: Final = 32
_CELL: Final = 8  # the image is a 4 x 4 grid of 8-pixel cells
_COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
}
_COLOUR_LETTERS: Final = ("A", "B", "C", "D")
_COLOUR_OPTIONS: Final = "(A) red (B) green (C) blue (D) yellow"

# 3 x 5 bitmap font for the digits, one string of 15 cells per digit, row by row.
_DIGIT_FONT: Final[tuple[str, ...]] = (
    "111101101101111",
    "010110010010111",
    "111001111100111",
    "111001111001111",
    "101101111001001",
    "111100111001111",
    "111100111101111",
    "111001001001001",
    "111101111101111",
    "111101111001111",
)

_QUESTIONS: Final[dict[TaskKind, str]] = {
    "counting": "How many shapes are in the image?",
    "colour": f"What colour is the shape? {_COLOUR_OPTIONS}",
    "position": "Is the shape on the left or the right?",
    "digit_sum": "What is the sum of the two digits?",
}

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class VisualPrompt:
    """One prompt of the synthetic task.

    ``image`` is ``[IMAGE_SIZE, IMAGE_SIZE, 3]`` uint8 RGB; ``answer`` is the gold answer the rule
    reward compares with; ``hint`` is the observation a worked solution states in its thinking.
    """

    prompt_id: str
    kind: TaskKind
    question: str
    image: Image
    answer: str
    hint: str

    def pixel_values(self) -> npt.NDArray[np.float32]:
        """The image as ``[3, H, W]`` floats in [-1, 1], the layout vision encoders take."""
        scaled = self.image.astype(np.float32) / 127.5 - 1.0
        return np.ascontiguousarray(scaled.transpose(2, 0, 1))


def generate_prompts(
    count: int,
    *,
    seed: int,
    kinds: Sequence[TaskKind] = TASK_KINDS,
    split: str = "train",
) -> list[VisualPrompt]:
    """Draw ``count`` prompts, cycling through ``kinds``; deterministic in ``seed``.

    Use different seeds (or splits) for training and held-out prompts: the id is
    ``"{split}-{seed}-{index}"``, so ids never collide across splits.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not kinds:
        raise ValueError("kinds must name at least one task kind")
    unknown = sorted(set(kinds) - set(TASK_KINDS))
    if unknown:
        raise ValueError(f"unknown task kinds {unknown}; known: {list(TASK_KINDS)}")
    rng = np.random.default_rng(seed)
    prompts = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        image, answer, hint = _DRAWERS[kind](rng)
        prompts.append(
            VisualPrompt(
                prompt_id=f"{split}-{seed}-{index:06d}",
                kind=kind,
                question=_QUESTIONS[kind],
                image=image,
                answer=answer,
                hint=hint,
            )
        )
    return prompts


def reference_response(prompt: VisualPrompt) -> str:
    """A worked solution in the R1 template, used for the supervised warm-up."""
    return f"<think>{prompt.hint}</think> \\boxed{{{prompt.answer}}}"


def _blank() -> Image:
    return np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def _paint_square(image: Image, cell: int, size: int, colour: tuple[int, int, int]) -> None:
    row, col = divmod(cell, IMAGE_SIZE // _CELL)
    offset = (_CELL - size) // 2
    top, left = row * _CELL + offset, col * _CELL + offset
    image[top : top + size, left : left + size] = colour


def _draw_counting(rng: np.random.Generator) -> tuple[Image, str, str]:
    count = int(rng.integers(1, 5))
    cells = rng.choice(16, size=count, replace=False)
    colour = _COLOURS[str(rng.choice(list(_COLOURS)))]
    image = _blank()
    for cell in cells:
        _paint_square(image, int(cell), int(rng.integers(4, 7)), colour)
    return image, str(count), f"{count} shapes"


def _draw_colour(rng: np.random.Generator) -> tuple[Image, str, str]:
    index = int(rng.integers(0, len(_COLOURS)))
    name = list(_COLOURS)[index]
    image = _blank()
    _paint_square(image, int(rng.integers(0, 16)), int(rng.integers(4, 7)), _COLOURS[name])
    return image, _COLOUR_LETTERS[index], name


def _draw_position(rng: np.random.Generator) -> tuple[Image, str, str]:
    side = "left" if rng.random() < 0.5 else "right"
    column = int(rng.integers(0, 2)) + (0 if side == "left" else 2)
    cell = int(rng.integers(0, 4)) * 4 + column
    colour = _COLOURS[str(rng.choice(list(_COLOURS)))]
    image = _blank()
    _paint_square(image, cell, int(rng.integers(4, 7)), colour)
    return image, side, side


def _paint_digit(image: Image, digit: int, top: int, left: int, scale: int) -> None:
    bitmap = np.array([int(c) for c in _DIGIT_FONT[digit]], dtype=bool).reshape(5, 3)
    pixels = np.kron(bitmap, np.ones((scale, scale), dtype=bool))
    region = image[top : top + pixels.shape[0], left : left + pixels.shape[1]]
    region[pixels] = (255, 255, 255)


def _draw_digit_sum(rng: np.random.Generator) -> tuple[Image, str, str]:
    first, second = (int(d) for d in rng.integers(0, 10, size=2))
    image = _blank()
    scale = 2  # 6 x 10 pixels per digit
    top = int(rng.integers(2, IMAGE_SIZE - 5 * scale - 2))
    _paint_digit(image, first, top, int(rng.integers(1, 8)), scale)
    _paint_digit(image, second, top, int(rng.integers(17, 24)), scale)
    return image, str(first + second), f"{first} and {second}"


_DRAWERS = {
    "counting": _draw_counting,
    "colour": _draw_colour,
    "position": _draw_position,
    "digit_sum": _draw_digit_sum,
}
