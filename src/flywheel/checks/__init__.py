"""Checks: one detector per family, registered by name, negatable with `not-`."""

from flywheel.checks.base import Check, CheckContext, build, from_entry, register, registered

__all__ = ["Check", "CheckContext", "build", "from_entry", "register", "registered"]
