"""What may change in a study that exists, and which trials of another study fit its space.

A study's declaration is fixed where its trials depend on it (the metric, the space's
declared parameters, the algorithm, the measurement rule, the seed, the fidelity) and
free where only the future depends on it (the budget, the leases, the early-stopping
rule).  :func:`study_changes` sorts the differences between two declarations into these
two kinds and says, for each change that cannot be applied in place, what to do instead.
:func:`fit_to_space` is the rule by which a warm-started study takes another study's
trials: values for every parameter it declares, inside its domains.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpsearch.errors import InvalidArgumentError
from hpsearch.space.params import Params, Space
from hpsearch.space.study import StudyConfig, parameter_to_dict

#: Keys (``section.key`` for nested ones) that change only what happens next.
SAFE_KEYS = frozenset(
    {
        "budget.max_trials",
        "budget.parallel_trials",
        "budget.max_failed_trials",
        "budget.max_attempts",
        "lease_seconds",
        "keras_tuner_lease_seconds",
        "early_stopping.rule",
        "early_stopping.min_trials",
        "early_stopping.min_steps",
    }
)


@dataclass(frozen=True, slots=True)
class StudyChange:
    """One difference between a study's stored declaration and a new one.

    ``key`` is the study-file key (``budget.max_trials``, ``parameters.lr``); ``old`` and
    ``new`` its values in the file form (None when absent); ``safe`` whether it can be
    applied to the existing study."""

    key: str
    old: Any
    new: Any
    safe: bool

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def study_changes(old: StudyConfig, new: StudyConfig) -> list[StudyChange]:
    """The differences from ``old`` to ``new``, by study-file key.

    Parameters may be added (as Keras Tuner's UpdateSpace adds them: earlier trials have
    no value for them); a parameter declared in ``old`` and left out of ``new`` is kept,
    since a study's space may have grown from Keras Tuner workers.  Changing a declared
    parameter is not safe: earlier trials were drawn from its old domain.
    """
    changes: list[StudyChange] = []
    before, after = _flat(old.to_dict()), _flat(new.to_dict())
    for key in sorted(set(before) | set(after)):
        if key.startswith("parameters."):
            continue
        if before.get(key) != after.get(key):
            changes.append(StudyChange(key, before.get(key), after.get(key), key in SAFE_KEYS))
    for param in new.space:
        if param.name not in old.space:
            changes.append(
                StudyChange(f"parameters.{param.name}", None, parameter_to_dict(param), True)
            )
            continue
        declared = old.space[param.name]
        if declared != param:
            changes.append(
                StudyChange(
                    f"parameters.{param.name}",
                    parameter_to_dict(declared),
                    parameter_to_dict(param),
                    False,
                )
            )
    return changes


def with_updates(config: StudyConfig, updates: Mapping[str, Any]) -> StudyConfig:
    """``config`` with study-file keys (``budget.max_trials``, ``lease_seconds``) set to
    new values (None removes an optional one), checked as a study file is."""
    data = config.to_dict()
    for key, value in updates.items():
        section, _, sub = key.partition(".")
        if sub:
            data[section] = {**(data.get(section) or {}), sub: value}
        else:
            data[key] = value
    return StudyConfig.from_dict(data)


def refuse_unsafe(name: str, changes: list[StudyChange]) -> None:
    """InvalidArgumentError listing the changes of ``changes`` that cannot be applied to
    study ``name`` in place, with what to run instead; nothing when all are safe."""
    unsafe = [c for c in changes if not c.safe]
    if not unsafe:
        return
    listed = "; ".join(str(c) for c in unsafe)
    raise InvalidArgumentError(
        f"study {name!r} cannot change {listed} in place: its trials depend on it. Keep "
        f"the stored value (`hpsearch study show {name}` prints it), or create a study "
        f"under a new name with these settings and `warm_start: {{study: {name}}}` to start "
        f"from this one's results (`hpsearch study copy {name} --name NEW` copies it "
        "instead). Only budget, lease_seconds, keras_tuner_lease_seconds, early_stopping "
        "and new parameters change in place"
    )


def fit_to_space(params: Mapping[str, Any], space: Space) -> Params | None:
    """``params`` (a trial of another study) as a point of ``space``, or None when it does
    not fit.

    Values of parameters ``space`` does not declare are dropped; an active parameter
    without a value takes its declared ``default`` (a ``fixed`` one its value; without
    either the trial does not fit); every value must lie in its domain (a stepped range:
    on its grid).
    """
    point: dict[str, Any] = {}
    for param in space:
        if not space.is_active(param, point):
            continue
        if param.name in params:
            point[param.name] = params[param.name]
        elif param.default is not None or param.kind == "fixed":
            point[param.name] = param.effective_default
        else:
            return None
    try:
        return space.validate(point)
    except InvalidArgumentError:
        return None


def _flat(data: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and key in ("budget", "early_stopping", "parameters"):
            for sub, inner in value.items():
                flat[f"{key}.{sub}"] = inner
        else:
            flat[key] = value
    return flat


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    return json.dumps(value, separators=(", ", ": ")) if isinstance(value, Mapping) else str(value)


__all__ = [
    "SAFE_KEYS",
    "StudyChange",
    "fit_to_space",
    "refuse_unsafe",
    "study_changes",
    "with_updates",
]
