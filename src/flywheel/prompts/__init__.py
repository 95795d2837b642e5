"""Prompts: versioned prompt files and their rendering (layer 2)."""

from flywheel.prompts.registry import Prompt, PromptRegistry, RenderedPrompt, load_prompt
from flywheel.prompts.render import SourceItem, family_of, language_of, render, source_style

__all__ = ["Prompt", "PromptRegistry", "RenderedPrompt", "SourceItem", "family_of", "language_of", "load_prompt",
           "render", "source_style"]
