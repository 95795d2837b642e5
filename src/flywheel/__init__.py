"""flywheel: the system around a large language model.

The public API, importable from the package itself (`from flywheel import Runtime, ChatRequest`). Names are
resolved on first use (module-level `__getattr__`), so `import flywheel` stays cheap: the CLI and a worker that
needs only the types do not pay for the gateway, retrieval or evals stacks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "Runtime": "flywheel.apps.runtime",
    "Project": "flywheel.config",
    "ChatRequest": "flywheel.types",
    "ChatResult": "flywheel.types",
    "Message": "flywheel.types",
    "Answer": "flywheel.types",
    "Citation": "flywheel.types",
    "Source": "flywheel.types",
    "Usage": "flywheel.types",
    "Hit": "flywheel.types",
    "Chunk": "flywheel.types",
    "Document": "flywheel.types",
    "CheckResult": "flywheel.types",
    "GuardAction": "flywheel.types",
    "Feedback": "flywheel.types",
    "Gateway": "flywheel.gateway",
    "Retriever": "flywheel.retrieval",
    "ingest": "flywheel.retrieval",
    "GuardPolicy": "flywheel.guards",
    "Cache": "flywheel.cache",
    "trace": "flywheel.tracing",
    "FlywheelError": "flywheel.errors",
    "UserError": "flywheel.errors",
    "ConfigError": "flywheel.errors",
    "GatewayError": "flywheel.errors",
}

__all__ = [
    "Answer", "Cache", "ChatRequest", "ChatResult", "CheckResult", "Chunk", "Citation", "ConfigError", "Document",
    "Feedback", "FlywheelError", "Gateway", "GatewayError", "GuardAction", "GuardPolicy", "Hit", "Message",
    "Project", "Retriever", "Runtime", "Source", "Usage", "UserError", "__version__", "feedback", "ingest", "trace",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from flywheel.apps.runtime import Runtime
    from flywheel.cache import Cache
    from flywheel.config import Project
    from flywheel.errors import ConfigError, FlywheelError, GatewayError, UserError
    from flywheel.gateway import Gateway
    from flywheel.guards import GuardPolicy
    from flywheel.retrieval import Retriever, ingest  # type: ignore[no-redef]
    from flywheel.tracing import trace
    from flywheel.types import (
        Answer,
        ChatRequest,
        ChatResult,
        CheckResult,
        Chunk,
        Citation,
        Document,
        Feedback,
        GuardAction,
        Hit,
        Message,
        Source,
        Usage,
    )


def __getattr__(name: str) -> Any:
    if name == "feedback":  # a callable module: flywheel.feedback(trace_id, "thumbs", "down")
        value = importlib.import_module("flywheel.feedback")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flywheel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"feedback"})
