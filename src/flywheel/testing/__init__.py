"""Test helpers that are public API: the fake OpenAI-wire LLM server."""
