"""Checks: one detector per family, registered by name, negatable with `not-`."""

from flywheel.checks.base import Check, CheckContext, Services, build, from_entry, register, registered

__all__ = ["Check", "CheckContext", "Services", "build", "from_entry", "register", "registered"]
