"""Where the chief is, who this worker is, and which study it works on.

Where the chief is and who this worker is, first found wins:

1. ``--oracle HOST:PORT`` and ``--worker-id``;
2. Keras Tuner's ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT`` and
   ``KERASTUNER_TUNER_ID``;
3. a Vertex AI CustomJob's ``CLUSTER_SPEC`` (or ``TF_CONFIG``): the chief is the first
   replica of ``workerpool0`` (``chief`` in TF_CONFIG), on port ``KERASTUNER_ORACLE_PORT``
   or 8000; the worker id is ``<pool>-<index>``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

from hpsearch.errors import InvalidArgumentError

DEFAULT_ORACLE_PORT = 8000


def resolve_oracle(flag: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The chief's address and this worker's default id, from the flag or the environment."""
    default_id = env.get("KERASTUNER_TUNER_ID") or f"{socket.gethostname()}-{os.getpid()}"
    port = env.get("KERASTUNER_ORACLE_PORT") or str(DEFAULT_ORACLE_PORT)
    if flag:
        return _address(flag, port), default_id
    if env.get("KERASTUNER_ORACLE_IP"):
        return _address(env["KERASTUNER_ORACLE_IP"], port), default_id
    for variable in ("CLUSTER_SPEC", "TF_CONFIG"):
        if env.get(variable):
            host, task_id = _from_cluster(variable, env[variable])
            return f"{host}:{port}", env.get("KERASTUNER_TUNER_ID") or task_id
    raise InvalidArgumentError(
        "where is the chief? pass --oracle HOST:PORT, or set KERASTUNER_ORACLE_IP (and "
        "KERASTUNER_ORACLE_PORT), or run inside a Vertex AI CustomJob (CLUSTER_SPEC)"
    )


def _address(host: str, port: str) -> str:
    host = host.strip()
    if host.startswith("["):  # [::1]:8000 or [::1]
        return host if "]:" in host else f"{host}:{port}"
    if host.count(":") == 1:
        return host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _from_cluster(variable: str, text: str) -> tuple[str, str]:
    try:
        spec = json.loads(text)
        cluster = spec["cluster"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgumentError(
            f"${variable} is not the JSON Vertex AI sets ({{'cluster': ..., 'task': ...}})"
        ) from None
    for pool in ("workerpool0", "chief", "master"):
        replicas = cluster.get(pool)
        if replicas:
            host = str(replicas[0]).rsplit(":", 1)[0]
            break
    else:
        raise InvalidArgumentError(
            f"${variable} names no chief: expected a workerpool0 (or chief) replica"
        )
    task = spec.get("task") or {}
    task_id = f"{task.get('type', 'worker')}-{task.get('index', 0)}"
    return host, task_id


def only_active_study(client: Any) -> str:
    """The chief's one active study, for a worker given no ``--study``."""
    active = [s.name for s in client.list_studies() if s.state.value == "ACTIVE"]
    if len(active) == 1:
        return str(active[0])
    if not active:
        raise InvalidArgumentError(
            "the chief has no active study; start it with --study FILE or pass --study NAME"
        )
    raise InvalidArgumentError(
        f"the chief has several active studies ({', '.join(sorted(active))}); pass --study NAME"
    )
