"""The hpsearch worker: runs trials handed out by the chief under the Vertex AI contract.

``hpsearch.worker.loop.Worker`` is the loop; ``hpsearch.worker.contract`` the trial contract;
``hpsearch.worker.gpus`` GPU discovery; ``hpsearch.worker.discovery`` where the chief is
(``--oracle``, Keras Tuner's variables, a Vertex AI cluster spec).  The worker reaches the
chief through :mod:`hpsearch.client` only.  (Kept import-free so the CLI starts fast.)
"""
