"""A descriptor pool of hpsearch's own, for its copy of Keras Tuner's protos.

Keras Tuner registers ``keras_tuner.*`` messages in protobuf's default pool; registering
our wire-identical copy there too fails with "duplicate symbol".  Building ours in a private
pool lets ``import keras_tuner`` and hpsearch's chief, client or tests share one process.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
