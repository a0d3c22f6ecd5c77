"""Conversion between a :class:`Space` and Keras Tuner ``HyperParameters`` configs.

Works on the plain dicts ``keras_tuner.HyperParameters.get_config()`` produces and
``HyperParameters.from_config()`` accepts (Keras Tuner 1.4)::

    {"space": [{"class_name": "Float", "config": {"name": "lr", "default": 0.0001,
                "conditions": [], "min_value": 0.0001, "max_value": 0.1, "step": None,
                "sampling": "log"}}, ...],
     "values": {"lr": 0.0001, ...}}

so the chief never imports Keras Tuner or TensorFlow.  The mapping is one to one:

=========================  ======================================================
Keras Tuner                hpsearch
=========================  ======================================================
``Float``                  :class:`DoubleParam` (sampling -> scale, step, default)
``Int``                    :class:`IntegerParam` (linear step 1 == no step)
``Choice`` of strings      :class:`CategoricalParam`
``Choice`` of numbers      :class:`DiscreteParam` (``ordered`` kept)
``Boolean``                :class:`BooleanParam`
``Fixed``                  :class:`FixedParam`
``Parent`` condition       :class:`Condition`
=========================  ======================================================

``space_from_keras_tuner(space_to_keras_tuner(s)) == s`` for every space, and the dict
``space_to_keras_tuner`` returns is exactly what Keras Tuner's own
``from_config(...).get_config()`` gives back for it.  Three Keras Tuner declarations
have no exact counterpart and are converted to their closest equivalent: an ordered
numeric ``Choice`` listed out of order is sorted (its default is kept); a ``Choice`` of
booleans becomes a ``Boolean`` (or a ``Fixed`` for a single value); a ``Float``/``Int``
with ``min_value == max_value`` becomes a ``Fixed``.  A name Keras Tuner declares twice
under different values of the same parent (two ``conditional_scope`` blocks) becomes one
parameter whose condition lists both values.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

KERAS_TUNER_CLASSES = ("Float", "Int", "Choice", "Fixed", "Boolean")
_COMMON_KEYS = {"name", "default", "conditions"}
_KEYS = {
    "Float": _COMMON_KEYS | {"min_value", "max_value", "step", "sampling"},
    "Int": _COMMON_KEYS | {"min_value", "max_value", "step", "sampling"},
    "Choice": _COMMON_KEYS | {"values", "ordered"},
    "Fixed": {"name", "conditions", "value"},
    "Boolean": _COMMON_KEYS,
}


def space_from_keras_tuner(config: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Space:
    """Build a :class:`Space` from a ``HyperParameters.get_config()`` dict.

    ``config`` may also be the bare ``"space"`` list.  Its ``"values"`` (the current
    values of a ``HyperParameters`` object) are not part of the space and are ignored.
    Raises :class:`InvalidArgumentError` naming the hyperparameter that cannot be read.
    """
    if isinstance(config, Mapping):
        if "space" not in config:
            raise InvalidArgumentError(
                "a Keras Tuner config holds a 'space' list (HyperParameters.get_config()); "
                f"got keys {sorted(config)}"
            )
        entries = config["space"]
    else:
        entries = config
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        raise InvalidArgumentError(
            f"the Keras Tuner 'space' must be a list of hyperparameters, got {entries!r}"
        )
    params: dict[str, Parameter] = {}
    for entry in entries:
        param = parameter_from_keras_tuner(entry)
        if param.name in params:
            params[param.name] = _merge_duplicate(params[param.name], param)
        else:
            params[param.name] = param
    return Space(tuple(params.values()))


def space_to_keras_tuner(space: Space) -> dict[str, Any]:
    """The ``HyperParameters.get_config()`` dict of ``space``.

    ``"values"`` holds each parameter's default where active under the defaults, which
    is what a fresh Keras Tuner ``HyperParameters`` holds after declaring the space.
    """
    return {
        "space": [parameter_to_keras_tuner(param, space) for param in space],
        # Not validated: like Keras Tuner, a reverse-log stepped range defaults to min,
        # which need not lie on its grid.
        "values": {name: _kt_value(space[name], v) for name, v in space.defaults().items()},
    }


def values_from_keras_tuner(space: Space, values: Mapping[str, Any]) -> Params:
    """Keras Tuner trial values as validated hpsearch parameters.

    Keras Tuner keeps values of inactive hyperparameters around (they were registered
    before their parent changed); those are dropped, not refused.
    """
    return space.validate(values, allow_inactive=True)


def values_to_keras_tuner(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """hpsearch parameters typed as Keras Tuner expects them (``Int`` an int, ...)."""
    validated = space.validate(params, allow_inactive=True)
    return {name: _kt_value(space[name], value) for name, value in validated.items()}


def parameter_from_keras_tuner(entry: Mapping[str, Any]) -> Parameter:
    """One ``{"class_name": ..., "config": {...}}`` entry as an hpsearch parameter."""
    if not isinstance(entry, Mapping) or "class_name" not in entry or "config" not in entry:
        raise InvalidArgumentError(
            "a Keras Tuner hyperparameter is a mapping with 'class_name' and 'config', "
            f"got {entry!r}"
        )
    kind = entry["class_name"]
    config = entry["config"]
    if kind not in _KEYS:
        raise InvalidArgumentError(
            f"unknown Keras Tuner hyperparameter class {kind!r}; hpsearch reads "
            f"{', '.join(KERAS_TUNER_CLASSES)}"
        )
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
        raise InvalidArgumentError(
            f"Keras Tuner {kind} config must be a mapping with a string 'name', got {config!r}"
        )
    name = config["name"]
    extra = sorted(set(config) - _KEYS[kind])
    if extra:
        # A newer Keras Tuner may add keys; the domain is still readable without them.
        log.warning("event=kt_unknown_keys parameter=%s class=%s keys=%s", name, kind, extra)
    conditions = _conditions_from_keras_tuner(name, config.get("conditions") or [])
    default = config.get("default")
    where = f"Keras Tuner {kind} {name!r}"
    if kind in ("Float", "Int"):
        for key in ("min_value", "max_value"):
            if config.get(key) is None:
                raise InvalidArgumentError(f"{where}: {key} is missing")
        lo, hi = config["min_value"], config["max_value"]
        if lo == hi:
            log.info("event=kt_fixed_range parameter=%s value=%s", name, lo)
            return FixedParam(name, value=lo, conditions=conditions)
        scale = Scale.parse(config.get("sampling"), where=where)
        cls = DoubleParam if kind == "Float" else IntegerParam
        return cls(  # type: ignore[operator]
            name,
            min=lo,
            max=hi,
            scale=scale,
            step=config.get("step"),
            conditions=conditions,
            default=default,
        )
    if kind == "Choice":
        return _choice_from_keras_tuner(name, config, conditions, where)
    if kind == "Boolean":
        if default is not None and not isinstance(default, bool):
            raise InvalidArgumentError(f"{where}: default must be true or false, got {default!r}")
        return BooleanParam(name, conditions=conditions, default=default)
    if "value" not in config:
        raise InvalidArgumentError(f"{where}: value is missing")
    return FixedParam(name, value=config["value"], conditions=conditions)


def parameter_to_keras_tuner(param: Parameter, space: Space | None = None) -> dict[str, Any]:
    """The ``{"class_name": ..., "config": {...}}`` entry of one parameter.

    ``space`` (the parameter's space) types condition values like their parents'.
    """
    conditions = [
        {
            "class_name": "Parent",
            "config": {
                "name": c.parent,
                "values": [
                    _kt_value(space[c.parent], v) if space is not None and c.parent in space else v
                    for v in c.values
                ],
            },
        }
        for c in param.conditions
    ]
    config: dict[str, Any] = {"name": param.name}
    if isinstance(param, (DoubleParam, IntegerParam)):
        is_int = isinstance(param, IntegerParam)
        # Keras Tuner's Int keeps an unset default as None, its Float reports min_value.
        config["default"] = param.default if is_int else float(param.effective_default)
        config["conditions"] = conditions
        config["min_value"] = param.min
        config["max_value"] = param.max
        step = param.step
        if is_int and step is None and param.scale is Scale.LINEAR:
            step = 1
        config["step"] = step
        config["sampling"] = param.scale.value
        return {"class_name": "Int" if is_int else "Float", "config": config}
    if isinstance(param, (CategoricalParam, DiscreteParam)):
        values = [_kt_value(param, v) for v in param.values]
        config["default"] = _kt_value(param, param.effective_default)
        config["conditions"] = conditions
        config["values"] = values
        config["ordered"] = isinstance(param, DiscreteParam) and param.ordered
        return {"class_name": "Choice", "config": config}
    if isinstance(param, BooleanParam):
        config["default"] = bool(param.effective_default)
        config["conditions"] = conditions
        return {"class_name": "Boolean", "config": config}
    config["conditions"] = conditions
    config["value"] = param.value
    return {"class_name": "Fixed", "config": config}


# -- helpers ------------------------------------------------------------------------------
def _kt_value(param: Parameter, value: Any) -> Any:
    """``value`` typed as Keras Tuner holds it for ``param``."""
    if isinstance(param, DoubleParam):
        return float(value)
    if isinstance(param, IntegerParam):
        return int(value)
    if isinstance(param, DiscreteParam):
        # A Keras Tuner Choice holds one type: all ints, or all floats.
        if all(isinstance(v, int) for v in param.values):
            return int(value)
        return float(value)
    if isinstance(param, BooleanParam):
        return bool(value)
    return value


def _choice_from_keras_tuner(
    name: str, config: Mapping[str, Any], conditions: tuple[Condition, ...], where: str
) -> Parameter:
    values = config.get("values")
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence) or not values:
        raise InvalidArgumentError(f"{where}: values must be a non-empty list, got {values!r}")
    default = config.get("default")
    if default is None:
        default = values[0]  # Keras Tuner's Choice defaults to its first value
    ordered = config.get("ordered")
    if all(isinstance(v, bool) for v in values):
        if len(set(values)) == 1:
            return FixedParam(name, value=values[0], conditions=conditions)
        return BooleanParam(name, conditions=conditions, default=default)
    if all(isinstance(v, str) for v in values):
        if ordered:
            raise InvalidArgumentError(f"{where}: ordered must be false for string values")
        return CategoricalParam(name, values=tuple(values), conditions=conditions, default=default)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise InvalidArgumentError(f"{where}: values must be finite numbers")
        return DiscreteParam(
            name,
            values=tuple(values),
            ordered=True if ordered is None else bool(ordered),
            conditions=conditions,
            default=default,
        )
    raise InvalidArgumentError(
        f"{where}: values must be all strings, all numbers or all booleans, got {list(values)!r}"
    )


def _conditions_from_keras_tuner(name: str, raw: Any) -> tuple[Condition, ...]:
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise InvalidArgumentError(
            f"Keras Tuner hyperparameter {name!r}: conditions must be a list, got {raw!r}"
        )
    conditions = []
    for item in raw:
        if not isinstance(item, Mapping) or item.get("class_name") != "Parent":
            raise InvalidArgumentError(
                f"Keras Tuner hyperparameter {name!r}: only Parent conditions are supported, "
                f"got {item!r}"
            )
        config = item.get("config")
        if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
            raise InvalidArgumentError(
                f"Keras Tuner hyperparameter {name!r}: a Parent condition needs a name and "
                f"values, got {item!r}"
            )
        values = config.get("values")
        if not isinstance(values, (list, tuple)):
            values = [values]
        conditions.append(Condition(config["name"], tuple(values)))
    return tuple(conditions)


def _merge_duplicate(first: Parameter, second: Parameter) -> Parameter:
    """Join two declarations of one name made under different values of one parent."""
    if replace(first, conditions=()) == replace(second, conditions=()) and (
        len(first.conditions) == len(second.conditions) >= 1
        and [c.parent for c in first.conditions] == [c.parent for c in second.conditions]
        and first.conditions[:-1] == second.conditions[:-1]
    ):
        last, other = first.conditions[-1], second.conditions[-1]
        merged = last.values + tuple(v for v in other.values if v not in last.values)
        return replace(first, conditions=(*first.conditions[:-1], Condition(last.parent, merged)))
    raise InvalidArgumentError(
        f"Keras Tuner declares {first.name!r} twice with different domains or conditions "
        f"({first!r} and {second!r}); give each declaration its own name"
    )


__all__ = [
    "KERAS_TUNER_CLASSES",
    "parameter_from_keras_tuner",
    "parameter_to_keras_tuner",
    "space_from_keras_tuner",
    "space_to_keras_tuner",
    "values_from_keras_tuner",
    "values_to_keras_tuner",
]
