"""The declared search space: parameters, conditions, and the study file.

Pure values with no I/O beyond reading and writing study files; everything above
(search, store, oracle, service) builds on these types.  Conversions to and from Keras
Tuner ``HyperParameters`` configs (``keras_tuner``) and Vertex AI ``StudySpec`` JSON
(``vertex``) work on plain dicts: neither TensorFlow nor google-cloud-aiplatform is
imported.
"""

from __future__ import annotations

from hpsearch.space.keras_tuner import (
    parameter_from_keras_tuner,
    parameter_to_keras_tuner,
    space_from_keras_tuner,
    space_to_keras_tuner,
    values_from_keras_tuner,
    values_to_keras_tuner,
)
from hpsearch.space.params import (
    GRID_LIMIT,
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
    MULTI_FIDELITY_ALGORITHMS,
    Budget,
    Constraint,
    EarlyStopping,
    Fidelity,
    Goal,
    Measurement,
    Metric,
    Rung,
    StudyConfig,
    WarmStart,
    dump_study,
    dumps_study,
    finite_metrics,
    load_study,
    loads_study,
    parameter_from_dict,
    parameter_to_dict,
)
from hpsearch.space.vertex import (
    VERTEX_ALGORITHMS,
    VERTEX_DISCRETE_LIMIT,
    budget_to_vertex,
    parameter_specs_from_vertex,
    parameter_specs_to_vertex,
    study_spec_to_vertex,
    values_from_vertex,
)

__all__ = [
    "ALGORITHMS",
    "MULTI_FIDELITY_ALGORITHMS",
    "GRID_LIMIT",
    "VERTEX_ALGORITHMS",
    "VERTEX_DISCRETE_LIMIT",
    "BooleanParam",
    "Budget",
    "CategoricalParam",
    "Condition",
    "DiscreteParam",
    "DoubleParam",
    "EarlyStopping",
    "Fidelity",
    "FixedParam",
    "Constraint",
    "Goal",
    "IntegerParam",
    "Measurement",
    "Metric",
    "Parameter",
    "ParamValue",
    "Params",
    "Rung",
    "Scale",
    "Space",
    "StudyConfig",
    "WarmStart",
    "budget_to_vertex",
    "dump_study",
    "dumps_study",
    "finite_metrics",
    "load_study",
    "loads_study",
    "parameter_from_dict",
    "parameter_from_keras_tuner",
    "parameter_specs_from_vertex",
    "parameter_specs_to_vertex",
    "parameter_to_dict",
    "parameter_to_keras_tuner",
    "space_from_keras_tuner",
    "space_to_keras_tuner",
    "study_spec_to_vertex",
    "values_from_keras_tuner",
    "values_from_vertex",
    "values_to_keras_tuner",
]
