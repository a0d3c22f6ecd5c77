"""Local GPU discovery and the split of GPUs into trial slots."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)


def detect_gpus() -> list[str]:
    """Indices of the GPUs this process may use, as strings for ``CUDA_VISIBLE_DEVICES``.

    ``CUDA_VISIBLE_DEVICES`` set on the worker restricts the list (as CUDA itself would);
    otherwise ``nvidia-smi`` is asked.  TensorFlow is not imported: the worker stays light
    and the trials, which do import it, see only the devices they are given.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return devices
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("gpu_detection=failed tool=nvidia-smi error=%s", exc)
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_slots(gpus: list[str], per_trial: int) -> list[str | None]:
    """Split GPUs into concurrent trial slots of ``per_trial`` GPUs each.

    Returns one ``CUDA_VISIBLE_DEVICES`` value per slot: ``floor(len(gpus) / per_trial)``
    slots, or a single CPU slot (``""``: no GPU visible) when ``per_trial`` is 0 or there
    are fewer GPUs than one trial needs.  ``None`` means "leave the variable alone", used
    only when no GPU is known at all so the trial inherits the worker's environment.
    """
    if per_trial < 0:
        raise ValueError("gpus per trial must be >= 0")
    if not gpus:
        return [None]
    if per_trial == 0:
        return [""]
    n = len(gpus) // per_trial
    if n == 0:
        log.warning(
            "gpus=%d gpus_per_trial=%d: fewer GPUs than one trial needs; running on the CPU",
            len(gpus),
            per_trial,
        )
        return [""]
    return [",".join(gpus[i * per_trial : (i + 1) * per_trial]) for i in range(n)]
