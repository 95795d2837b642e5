"""Prompts: versioned prompt files, their rendering, and their stored versions and labels (layer 2)."""

from flywheel.prompts.prompt import Prompt, RenderedPrompt
from flywheel.prompts.reasoning import split_reasoning, strip_reasoning
from flywheel.prompts.registry import PromptRegistry, load_prompt
from flywheel.prompts.render import SourceItem, family_of, language_of, render, source_style, supports_prefill

__all__ = ["Prompt", "PromptRegistry", "RenderedPrompt", "SourceItem", "family_of", "language_of", "load_prompt",
           "render", "source_style", "split_reasoning", "strip_reasoning", "supports_prefill"]
