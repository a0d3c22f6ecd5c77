"""Mapping between a study and Vertex AI's ``StudySpec``, as REST-API JSON dicts.

Plain dicts in the camelCase form of the Vertex AI REST API (``google.cloud.aiplatform.v1``
``StudySpec``), so nothing here needs google-cloud-aiplatform::

    {"metrics": [{"metricId": "val_accuracy", "goal": "MAXIMIZE"}],
     "parameters": [{"parameterId": "lr", "doubleValueSpec": {"minValue": 0.0001,
                     "maxValue": 0.1}, "scaleType": "UNIT_LOG_SCALE"}, ...],
     "algorithm": "ALGORITHM_UNSPECIFIED",
     "measurementSelectionType": "BEST_MEASUREMENT"}

int64 fields (``integerValueSpec`` bounds, ``parentIntValues``) are strings, as the REST
API's JSON mapping writes them.  A conditional parameter is nested under its parent's
``conditionalParameterSpecs``.

What Vertex AI cannot say is translated where the meaning survives and refused
(:class:`InvalidArgumentError`, naming the parameter and what to change) where it does
not:

- boolean -> categorical ``["false", "true"]``; fixed -> one-value categorical (strings,
  booleans) or discrete (numbers);
- a stepped double or integer -> discrete (its step grid), if it has at most
  :data:`VERTEX_DISCRETE_LIMIT` values;
- reverse-log integers, several unrelated parents, algorithms Vertex lacks -> refused.

:func:`parameter_specs_from_vertex` reads parameter specs back (camelCase or snake_case
keys); a space Vertex can express exactly survives the round trip unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hpsearch.errors import InvalidArgumentError
from hpsearch.space.params import (
    BooleanParam,
    CategoricalParam,
    Condition,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    IntegerParam,
    Parameter,
    Params,
    Scale,
    Space,
)
from hpsearch.space.study import Budget, Constraint, Goal, Measurement, Metric, StudyConfig

# Vertex AI lists at most this many values in a discrete parameter spec.
VERTEX_DISCRETE_LIMIT = 1000

VERTEX_ALGORITHMS = {
    "bayesian": "ALGORITHM_UNSPECIFIED",  # Vertex AI's default: Bayesian optimization
    "grid": "GRID_SEARCH",
    "random": "RANDOM_SEARCH",
}
_SCALE_TYPES = {
    Scale.LINEAR: "UNIT_LINEAR_SCALE",
    Scale.LOG: "UNIT_LOG_SCALE",
    Scale.REVERSE_LOG: "UNIT_REVERSE_LOG_SCALE",
}
_SCALES_BY_TYPE = {v: k for k, v in _SCALE_TYPES.items()}


def study_spec_to_vertex(config: StudyConfig, *, include_defaults: bool = False) -> dict[str, Any]:
    """The ``StudySpec`` JSON of a study: metric, parameters, algorithm, measurement.

    Parameter defaults (``defaultValue``) are left out unless ``include_defaults``:
    Vertex AI documents them as supported by Vertex AI Vizier studies only, not by a
    ``HyperparameterTuningJob``.
    """
    algorithm = VERTEX_ALGORITHMS.get(config.algorithm)
    if config.fidelity is not None:
        raise InvalidArgumentError(
            f"Vertex AI hyperparameter tuning jobs have no multi-fidelity search (no "
            f"{config.algorithm}: every trial trains its full budget); run this study on "
            "hpsearch chief with hpsearch workers, or set algorithm to bayesian (add "
            "early_stopping: median to stop poor trials early) for Vertex AI"
        )
    if algorithm is None:
        raise InvalidArgumentError(
            f"Vertex AI has no {config.algorithm!r} algorithm; set algorithm to one of "
            f"{', '.join(VERTEX_ALGORITHMS)} to run this study on Vertex AI"
        )
    spec: dict[str, Any] = {
        "metrics": metric_specs_to_vertex(config),
        "parameters": parameter_specs_to_vertex(config.space, include_defaults=include_defaults),
        "algorithm": algorithm,
        "measurementSelectionType": (
            "BEST_MEASUREMENT" if config.measurement is Measurement.BEST else "LAST_MEASUREMENT"
        ),
    }
    if config.early_stopping.rule == "median":
        spec["medianAutomatedStoppingSpec"] = {"useElapsedDuration": False}
    return spec


def metric_specs_to_vertex(config: StudyConfig) -> list[dict[str, Any]]:
    """``StudySpec.metrics``: each objective (several for a multi-objective study), then
    each constraint as a Vertex AI safety metric (``safetyConfig.safetyThreshold``: a trial
    is safe when the metric is at or below the threshold under MINIMIZE, at or above it
    under MAXIMIZE), so ``latency_ms <= 20`` is ``{metricId: latency_ms, goal: MINIMIZE,
    safetyConfig: {safetyThreshold: 20}}``."""
    specs: list[dict[str, Any]] = [
        {"metricId": m.name, "goal": "MAXIMIZE" if m.goal is Goal.MAXIMIZE else "MINIMIZE"}
        for m in config.metrics
    ]
    for constraint in config.constraints:
        specs.append(
            {
                "metricId": constraint.metric,
                "goal": "MINIMIZE" if constraint.op == "<=" else "MAXIMIZE",
                "safetyConfig": {"safetyThreshold": float(constraint.bound)},
            }
        )
    return specs


def metrics_from_vertex(
    specs: Sequence[Mapping[str, Any]],
) -> tuple[tuple[Metric, ...], tuple[Constraint, ...]]:
    """The objectives and constraints of a ``StudySpec.metrics`` list (the inverse of
    :func:`metric_specs_to_vertex`): a metric with a ``safetyConfig`` is a constraint."""
    objectives: list[Metric] = []
    constraints: list[Constraint] = []
    for spec in specs:
        goal = str(spec.get("goal", "MAXIMIZE")).lower()
        if goal not in ("maximize", "minimize"):
            raise InvalidArgumentError(
                f"the metric {spec.get('metricId')!r} has goal {spec.get('goal')!r}; "
                "Vertex AI goals are MAXIMIZE or MINIMIZE"
            )
        name = str(spec.get("metricId") or "")
        safety = spec.get("safetyConfig")
        if safety is not None:
            bound = float(safety.get("safetyThreshold", 0.0))
            constraints.append(Constraint(name, "<=" if goal == "minimize" else ">=", bound))
        else:
            objectives.append(Metric(name, Goal(goal)))
    if not objectives:
        raise InvalidArgumentError(
            "the study spec has no objective metric (only safety metrics); Vertex AI needs "
            "at least one metric without safetyConfig"
        )
    return tuple(objectives), tuple(constraints)


def budget_to_vertex(budget: Budget) -> dict[str, int]:
    """The trial counts of a ``HyperparameterTuningJob`` (``maxTrialCount``, ...)."""
    counts = {"maxTrialCount": budget.max_trials, "parallelTrialCount": budget.parallel_trials}
    if budget.max_failed_trials is not None:
        counts["maxFailedTrialCount"] = budget.max_failed_trials
    return counts


def parameter_specs_to_vertex(
    space: Space, *, include_defaults: bool = False
) -> list[dict[str, Any]]:
    """The ``StudySpec.parameters`` list: top-level specs, children nested under parents.

    ``include_defaults`` adds each parameter's ``defaultValue`` (Vertex AI Vizier only).
    """
    if not len(space):
        raise InvalidArgumentError(
            "the study declares no parameters and Vertex AI needs at least one; declare them "
            "under parameters: in the study file"
        )
    parent_of = {param.name: _vertex_parent(space, param) for param in space}
    children: dict[str, list[tuple[Condition, Parameter]]] = {}
    for param in space:
        condition = parent_of[param.name]
        if condition is not None:
            children.setdefault(condition.parent, []).append((condition, param))

    def build(param: Parameter) -> dict[str, Any]:
        spec = _parameter_spec(param, include_defaults)
        nested = []
        for condition, child in children.get(param.name, []):
            key, values = _parent_values(param, condition)
            nested.append({key: {"values": values}, "parameterSpec": build(child)})
        if nested:
            spec["conditionalParameterSpecs"] = nested
        return spec

    return [build(param) for param in space if parent_of[param.name] is None]


def parameter_specs_from_vertex(specs: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> Space:
    """Read Vertex AI parameter specs (or a whole ``StudySpec``) back into a :class:`Space`.

    A parameter nested under several values of its parent (Vertex allows repeating it
    with disjoint parent values) becomes one parameter whose condition lists them all.
    """
    if isinstance(specs, Mapping):
        specs = _get(specs, "parameters", default=None)
        if specs is None:
            raise InvalidArgumentError("a Vertex AI StudySpec holds a 'parameters' list")
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        raise InvalidArgumentError(
            f"Vertex AI parameter specs must be a list of ParameterSpec objects, got {specs!r}"
        )
    params: dict[str, Parameter] = {}

    def visit(spec: Any, condition: Condition | None) -> None:
        param = _parameter_from_spec(spec, condition)
        if param.name in params:
            params[param.name] = _merge(params[param.name], param)
        else:
            params[param.name] = param
        for item in _get(spec, "conditional_parameter_specs", default=None) or []:
            if not isinstance(item, Mapping):
                raise InvalidArgumentError(
                    f"Vertex AI parameter {param.name!r}: a conditional parameter spec must "
                    f"be a mapping, got {item!r}"
                )
            child_condition = _condition_from_spec(param.name, item)
            visit(_get(item, "parameter_spec"), child_condition)

    for spec in specs:
        visit(spec, None)
    return Space(tuple(params.values()))


def values_from_vertex(space: Space, parameters: Sequence[Mapping[str, Any]]) -> Params:
    """A Vertex AI trial's ``parameters`` (``[{"parameterId", "value"}]``) as hpsearch values."""
    values: dict[str, Any] = {}
    for item in parameters:
        if not isinstance(item, Mapping):
            raise InvalidArgumentError(f"a Vertex AI trial parameter is a mapping, got {item!r}")
        values[str(_get(item, "parameter_id"))] = _get(item, "value")
    return space.validate(values)


# -- to Vertex ------------------------------------------------------------------------------
def _parameter_spec(param: Parameter, include_defaults: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"parameterId": param.name}
    where = f"parameter {param.name!r}"
    if isinstance(param, DoubleParam) and param.step is None:
        value_spec: dict[str, Any] = {"minValue": param.min, "maxValue": param.max}
        if include_defaults and param.default is not None:
            value_spec["defaultValue"] = param.default
        spec["doubleValueSpec"] = value_spec
        spec["scaleType"] = _SCALE_TYPES[param.scale]
    elif isinstance(param, (DoubleParam, IntegerParam)) and (
        param.step is not None or param.scale is Scale.REVERSE_LOG
    ):
        if isinstance(param, IntegerParam) and param.scale is Scale.REVERSE_LOG:
            raise InvalidArgumentError(
                f"{where}: Vertex AI has no reverse-log scale for integers; use scale: log or "
                "linear, or make it a discrete parameter listing its values"
            )
        size = param.grid_size or 0
        if size > VERTEX_DISCRETE_LIMIT:
            raise InvalidArgumentError(
                f"{where}: with step {param.step:g} it has {size} values and Vertex AI takes "
                f"at most {VERTEX_DISCRETE_LIMIT} discrete values; raise the step or drop it"
            )
        values = [_tidy(v) for v in param.grid() or ()]
        value_spec = {"values": values}
        if include_defaults and param.default is not None:
            value_spec["defaultValue"] = _tidy(param.default)
        spec["discreteValueSpec"] = value_spec
        spec["scaleType"] = _SCALE_TYPES[param.scale]
    elif isinstance(param, IntegerParam):
        value_spec = {"minValue": str(param.min), "maxValue": str(param.max)}
        if include_defaults and param.default is not None:
            value_spec["defaultValue"] = str(param.default)
        spec["integerValueSpec"] = value_spec
        spec["scaleType"] = _SCALE_TYPES[param.scale]
    elif isinstance(param, CategoricalParam):
        value_spec = {"values": list(param.values)}
        if include_defaults and param.default is not None:
            value_spec["defaultValue"] = param.default
        spec["categoricalValueSpec"] = value_spec
    elif isinstance(param, DiscreteParam):
        # Vertex AI wants discrete values in increasing order (and treats them as ordered).
        value_spec = {"values": sorted(param.values)}
        if include_defaults and param.default is not None:
            value_spec["defaultValue"] = param.default
        spec["discreteValueSpec"] = value_spec
    elif isinstance(param, BooleanParam):
        value_spec = {"values": ["false", "true"]}
        if include_defaults and param.default is not None:
            value_spec["defaultValue"] = _bool_text(param.default)
        spec["categoricalValueSpec"] = value_spec
    elif isinstance(param, FixedParam):
        if isinstance(param.value, (bool, str)):
            spec["categoricalValueSpec"] = {"values": [_categorical_text(param.value)]}
        else:
            spec["discreteValueSpec"] = {"values": [param.value]}
    return spec


def _parent_values(parent: Parameter, condition: Condition) -> tuple[str, list[Any]]:
    """The ``parent*Values`` key and values of a condition, as the parent maps to Vertex."""
    if isinstance(parent, IntegerParam) and parent.step is None:
        return "parentIntValues", [str(int(v)) for v in condition.values]
    if isinstance(parent, (IntegerParam, DiscreteParam)) or (
        isinstance(parent, FixedParam) and not isinstance(parent.value, (bool, str))
    ):
        return "parentDiscreteValues", list(condition.values)
    return "parentCategoricalValues", [_categorical_text(v) for v in condition.values]


def _vertex_parent(space: Space, param: Parameter) -> Condition | None:
    """The one condition ``param`` nests under in Vertex AI.

    Several conditions are fine when one parent implies the others (Keras Tuner's nested
    ``conditional_scope`` blocks give exactly that): nest under the innermost.
    """
    if not param.conditions:
        return None
    if len(param.conditions) == 1:
        return param.conditions[0]
    for candidate in param.conditions:
        implied = _ancestry(space, space[candidate.parent])
        if all(
            other is candidate
            or (
                other.parent in implied
                and all(any(_equal(v, w) for w in other.values) for v in implied[other.parent])
            )
            for other in param.conditions
        ):
            return candidate
    parents = ", ".join(repr(c.parent) for c in param.conditions)
    raise InvalidArgumentError(
        f"parameter {param.name!r} depends on {parents}, and Vertex AI allows one parent per "
        "parameter; make one parent conditional on the other or keep a single condition"
    )


def _ancestry(space: Space, param: Parameter) -> dict[str, tuple[Any, ...]]:
    """Parent name -> values it must take for ``param`` to be active (transitively)."""
    found: dict[str, tuple[Any, ...]] = {}
    for condition in param.conditions:
        for name, values in _ancestry(space, space[condition.parent]).items():
            found[name] = _intersect(found[name], values) if name in found else values
        if condition.parent in found:
            found[condition.parent] = _intersect(found[condition.parent], condition.values)
        else:
            found[condition.parent] = condition.values
    return found


def _intersect(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v for v in a if any(_equal(v, w) for w in b))


def _equal(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (
        not isinstance(a, (bool, str)) and not isinstance(b, (bool, str)) and float(a) == float(b)
    )


def _tidy(value: Any) -> int | float:
    """A number for JSON: ints stay ints, floats lose step noise (0.30000000000000004)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return float(f"{float(value):.15g}")


def _bool_text(value: Any) -> str:
    return "true" if value else "false"


def _categorical_text(value: Any) -> str:
    return _bool_text(value) if isinstance(value, bool) else str(value)


# -- from Vertex ----------------------------------------------------------------------------
def _get(spec: Mapping[str, Any], snake: str, *, default: Any = ...) -> Any:
    """A field under its REST (camelCase) or proto (snake_case) name."""
    parts = snake.split("_")
    camel = parts[0] + "".join(p.title() for p in parts[1:])
    if camel in spec:
        return spec[camel]
    if snake in spec:
        return spec[snake]
    if default is ...:
        raise InvalidArgumentError(f"Vertex AI spec is missing {camel!r}: {dict(spec)!r}"[:500])
    return default


def _parameter_from_spec(spec: Any, condition: Condition | None) -> Parameter:
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(f"a Vertex AI parameter spec is a mapping, got {spec!r}")
    name = _get(spec, "parameter_id")
    if not isinstance(name, str):
        raise InvalidArgumentError(f"Vertex AI parameterId must be a string, got {name!r}")
    conditions = (condition,) if condition is not None else ()
    scale_type = _get(spec, "scale_type", default=None) or "SCALE_TYPE_UNSPECIFIED"
    if scale_type == "SCALE_TYPE_UNSPECIFIED":
        scale = Scale.LINEAR
    elif scale_type in _SCALES_BY_TYPE:
        scale = _SCALES_BY_TYPE[scale_type]
    else:
        raise InvalidArgumentError(
            f"Vertex AI parameter {name!r}: unknown scaleType {scale_type!r}"
        )
    double = _get(spec, "double_value_spec", default=None)
    if double is not None:
        return DoubleParam(
            name,
            min=_get(double, "min_value", default=0),  # proto3 JSON omits 0
            max=_get(double, "max_value", default=0),  # proto3 JSON omits 0
            scale=scale,
            conditions=conditions,
            default=_get(double, "default_value", default=None),
        )
    integer = _get(spec, "integer_value_spec", default=None)
    if integer is not None:
        return IntegerParam(
            name,
            min=_get(integer, "min_value", default=0),  # proto3 JSON omits 0
            max=_get(integer, "max_value", default=0),  # proto3 JSON omits 0
            scale=scale,
            conditions=conditions,
            default=_get(integer, "default_value", default=None),
        )
    categorical = _get(spec, "categorical_value_spec", default=None)
    if categorical is not None:
        return CategoricalParam(
            name,
            values=tuple(_get(categorical, "values")),
            conditions=conditions,
            default=_get(categorical, "default_value", default=None),
        )
    discrete = _get(spec, "discrete_value_spec", default=None)
    if discrete is not None:
        default = _get(discrete, "default_value", default=None)
        return DiscreteParam(
            name,
            values=tuple(_number_from_json(v, name) for v in _get(discrete, "values")),
            conditions=conditions,
            default=None if default is None else _number_from_json(default, name),
        )
    raise InvalidArgumentError(
        f"Vertex AI parameter {name!r} has no doubleValueSpec, integerValueSpec, "
        "categoricalValueSpec or discreteValueSpec"
    )


def _condition_from_spec(parent: str, item: Mapping[str, Any]) -> Condition:
    for key in ("parent_int_values", "parent_discrete_values", "parent_categorical_values"):
        holder = _get(item, key, default=None)
        if holder is not None:
            values = _get(holder, "values")
            if key == "parent_categorical_values":
                return Condition(parent, tuple(str(v) for v in values))
            return Condition(parent, tuple(_number_from_json(v, parent) for v in values))
    raise InvalidArgumentError(
        f"a conditional parameter spec under {parent!r} needs parentIntValues, "
        "parentDiscreteValues or parentCategoricalValues"
    )


def _number_from_json(value: Any, name: str) -> int | float:
    """Vertex AI's doubles come back as ``32.0`` or ``"32"``: integral ones become ints."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"Vertex AI parameter {name!r}: expected a number, got {value!r}"
        ) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidArgumentError(
            f"Vertex AI parameter {name!r}: expected a number, got {value!r}"
        )
    return int(number) if number == int(number) else number


def _merge(first: Parameter, second: Parameter) -> Parameter:
    if (
        replace(first, conditions=()) == replace(second, conditions=())
        and len(first.conditions) == len(second.conditions) == 1
        and first.conditions[0].parent == second.conditions[0].parent
    ):
        a, b = first.conditions[0], second.conditions[0]
        merged = a.values + tuple(v for v in b.values if v not in a.values)
        return replace(first, conditions=(Condition(a.parent, merged),))
    raise InvalidArgumentError(
        f"Vertex AI parameter {first.name!r} is declared twice with different specs; "
        "give each its own parameterId"
    )


__all__ = [
    "VERTEX_ALGORITHMS",
    "VERTEX_DISCRETE_LIMIT",
    "budget_to_vertex",
    "parameter_specs_from_vertex",
    "parameter_specs_to_vertex",
    "study_spec_to_vertex",
    "values_from_vertex",
]
