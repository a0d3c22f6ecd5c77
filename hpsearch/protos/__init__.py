"""Protocol buffers: Keras Tuner's ``keras_tuner.Oracle`` wire format and ``hpsearch.v1``.

The ``*_pb2.py`` / ``*_pb2_grpc.py`` modules are generated; regenerate them with
``python -m hpsearch.protos.generate`` after editing a ``.proto`` file.  They are
compiled relative to the repository root, so they import one another package-absolutely.
"""
