"""The hpsearch worker: runs trials handed out by the chief under the Vertex AI contract.

``hpsearch.worker.loop.Worker`` is the loop; ``hpsearch.worker.contract`` the trial contract;
``hpsearch.worker.gpus`` GPU discovery.  (Kept import-free so the CLI starts fast.)
"""
