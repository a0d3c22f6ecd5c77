"""The declared search space: parameters, conditions, and the study file.

Pure values with no I/O beyond reading and writing study files; everything above
(search, store, oracle, service) builds on these types.
"""

from __future__ import annotations

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
    ParamValue,
    Scale,
    Space,
)
from hpsearch.space.study import (
    ALGORITHMS,
    Budget,
    EarlyStopping,
    Goal,
    Measurement,
    Metric,
    StudyConfig,
    dump_study,
    dumps_study,
    load_study,
    loads_study,
    parameter_from_dict,
    parameter_to_dict,
)

__all__ = [
    "ALGORITHMS",
    "BooleanParam",
    "Budget",
    "CategoricalParam",
    "Condition",
    "DiscreteParam",
    "DoubleParam",
    "EarlyStopping",
    "FixedParam",
    "Goal",
    "IntegerParam",
    "Measurement",
    "Metric",
    "Parameter",
    "ParamValue",
    "Params",
    "Scale",
    "Space",
    "StudyConfig",
    "dump_study",
    "dumps_study",
    "load_study",
    "loads_study",
    "parameter_from_dict",
    "parameter_to_dict",
]
