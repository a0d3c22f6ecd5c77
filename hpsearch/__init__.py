"""hpsearch: a hyperparameter-search service for TensorFlow/Keras teams."""

from __future__ import annotations

__version__ = "0.1.0"
