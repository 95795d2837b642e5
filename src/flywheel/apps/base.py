"""The App protocol every app follows.

    answer = app.run("How do I pin a model version?", tenant="acme")
    answer.text, answer.citations, answer.trace_id, answer.refused

Evals replay cases through `run`, the server calls `arun`, and feedback attaches to `answer.trace_id`.
Apps take their guard pipelines as a `flywheel.guards.GuardPolicy` (input guards before retrieval, output
guards after generation) built from the app's `guards:` section in flywheel.yaml.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from flywheel.types import Answer


@runtime_checkable
class App(Protocol):
    name: str

    def run(self, input: str, tenant: str | None = None, **options: Any) -> Answer: ...

    async def arun(self, input: str, tenant: str | None = None, **options: Any) -> Answer: ...
