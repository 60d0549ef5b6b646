"""Synthetic visual reasoning tasks that ship with hybridrl (images drawn in code)."""

from hybridrl.tasks.visual_reasoning import (
    TASK_KINDS,
    VisualPrompt,
    generate_prompts,
    reference_response,
)

__all__ = ["TASK_KINDS", "VisualPrompt", "generate_prompts", "reference_response"]
