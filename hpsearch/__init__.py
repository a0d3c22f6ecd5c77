"""hpsearch: a hyperparameter-search service for TensorFlow/Keras teams.

``hpsearch.Client`` talks to a chief over gRPC (``hpsearch.v1``); ``hpsearch.optimize``
runs a study's trials in this process, with no chief (``hpsearch.loop``);
``hpsearch.keras.TrialCallback`` reports Keras epochs and stops training when told;
``hpsearch.space`` holds the declared search space; ``hpsearch.store.Store`` the SQL study
store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hpsearch.client import Client
    from hpsearch.errors import TrialInfeasible
    from hpsearch.loop import OptimizeResult, RunningTrial, optimize

# Lazy, so that `import hpsearch` (and the space layer under it) loads neither gRPC nor the
# store, the numeric stack or TensorFlow: each name's module is imported when it is read.
_LAZY = {
    "Client": "hpsearch.client",
    "optimize": "hpsearch.loop",
    "OptimizeResult": "hpsearch.loop",
    "RunningTrial": "hpsearch.loop",
    "TrialInfeasible": "hpsearch.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "keras":  # the submodule, which imports TensorFlow
        return importlib.import_module("hpsearch.keras")
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")


__all__ = [
    "Client",
    "OptimizeResult",
    "RunningTrial",
    "TrialInfeasible",
    "__version__",
    "optimize",
]
