"""Guards: checks with on-fail actions, run on the input and output of an app or route."""

from flywheel.guards.policy import Guard, GuardOutcome, GuardPipeline, GuardPolicy, SourcesOutcome, restore

__all__ = ["Guard", "GuardOutcome", "GuardPipeline", "GuardPolicy", "SourcesOutcome", "restore"]
