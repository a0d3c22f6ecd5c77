"""Small builders shared by the store tests."""

from __future__ import annotations

import uuid

from hpsearch.space import Budget, Goal, Metric, StudyConfig


def study_config(
    name: str | None = None,
    *,
    goal: Goal = Goal.MAXIMIZE,
    max_attempts: int = 3,
    lease_seconds: float = 60.0,
) -> StudyConfig:
    """A study with an empty space (the store does not care about the space)."""
    return StudyConfig(
        name=name or f"s-{uuid.uuid4().hex[:10]}",
        metric=Metric("score", goal),
        budget=Budget(max_trials=1000, max_attempts=max_attempts),
        lease_seconds=lease_seconds,
    )
