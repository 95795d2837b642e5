"""Shared fixtures. Optional services skip on a user's machine that lacks them; under
FLYWHEEL_REQUIRE_SERVICES=1 (set by .ci/run) every such skip becomes a failure."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["services_fixtures"]

REQUIRE_SERVICES = os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1"
DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def need(condition: bool, reason: str) -> None:
    """Skip (or fail under CI) when an optional service or data set is missing."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing under FLYWHEEL_REQUIRE_SERVICES=1: {reason}")
    pytest.skip(reason)


@pytest.fixture
def spans():
    """Every span the tracer ends during the test."""
    from flywheel.tracing import tracer

    got: list = []
    tracer.add_sink(got.append)
    yield got
    tracer.remove_sink(got.append)


@pytest.fixture
def project(tmp_path):
    """An empty project folder with no flywheel.yaml."""
    from flywheel.config import Project

    return Project(tmp_path)
