"""Imports: finished trials of other tuners' studies into hpsearch studies.

- :mod:`hpsearch.importers.optuna` reads an Optuna study from any Optuna storage URL;
- :mod:`hpsearch.importers.keras_tuner` reads a Keras Tuner project directory
  (``oracle.json`` and ``trial_*/trial.json``) without importing Keras Tuner;
- :mod:`hpsearch.importers.common` writes them: each finished foreign trial becomes one
  trial of the study (COMPLETED, FAILED or STOPPED, with its intermediate measurements),
  tagged with where it came from, so that the study's model, ``hpsearch trials``, the
  dashboard and ``export`` use it like any other.  Imports are idempotent.

Like :mod:`hpsearch.vertex`, importers write through the store; the CLI's ``hpsearch import``
calls them.
"""
