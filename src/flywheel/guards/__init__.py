"""Guards: checks with on-fail actions, run on the input and output of an app or route."""

from flywheel.checks.pii import restore
from flywheel.guards.policy import Guard, GuardOutcome, GuardPipeline, GuardPolicy, SourcesOutcome

__all__ = ["Guard", "GuardOutcome", "GuardPipeline", "GuardPolicy", "SourcesOutcome", "restore"]
