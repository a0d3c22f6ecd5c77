"""Vertex AI integration: submit a declared study as a HyperparameterTuningJob, run the
chief and workers as a multi-pool CustomJob, and import a job's trials into a study.

This package is the optional ``vertex`` extra.  Its modules import google-cloud-aiplatform
only inside the functions that talk to Vertex AI, so building request bodies (dry runs) and
importing a job's JSON need nothing beyond the core install.

- :mod:`hpsearch.vertex.job`: request bodies (REST JSON, camelCase) for
  HyperparameterTuningJob and CustomJob.
- :mod:`hpsearch.vertex.api`: the calls to Vertex AI (create, get) through
  google-cloud-aiplatform.
- :mod:`hpsearch.vertex.importer`: a job's trials into an hpsearch study, idempotently.
The ``hpsearch vertex`` subcommands are in :mod:`hpsearch.cli.vertex`; the worker finds the
chief from ``CLUSTER_SPEC``/``TF_CONFIG`` in :mod:`hpsearch.worker.discovery`.
"""

from __future__ import annotations
