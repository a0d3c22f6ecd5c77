"""hpsearch: a hyperparameter-search service for TensorFlow/Keras teams.

``hpsearch.Client`` talks to a chief over gRPC (``hpsearch.v1``); ``hpsearch.space`` holds
the declared search space; ``hpsearch.store.Store`` the SQL study store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hpsearch.client import Client


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the space layer does not import gRPC.
    if name == "Client":
        from hpsearch.client import Client

        return Client
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")


__all__ = ["Client", "__version__"]
