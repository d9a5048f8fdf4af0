"""The environment of a worker process, whichever dialect it speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from procvision_algorithm_sdk.shared_memory import SHM_DIR_ENV, default_shm_dir

#: What a worker inherits of the daemon's environment: names, or prefixes ending in ``*``. Anything
#: else (the runner's token and settings, credentials, PYTHONPATH...) never reaches algorithm code;
#: ``worker_env_allow`` adds names for a site (never ``PROCVISION_*``, see ``_NEVER``).
ENV_ALLOW_LIST = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TERM",
                  "CUDA_*", "NVIDIA_*", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_*", "OPENBLAS_*",
                  "OPENCV_*", "ORT_*", "TF_CPP_MIN_LOG_LEVEL")
#: Prefixes no allow-list entry can let through: the runner's own settings and the protocol's
#: variables (the runner sets the ones a worker needs).
_NEVER = ("PROCVISION_", "PROC_")


def posix_shm_dir() -> Path:
    """The folder the runner creates POSIX shared memory segments in (``PROC_SHM_POSIX_DIR`` or
    ``/dev/shm``). Workers are told this folder explicitly (``worker_environment``)."""
    return Path(default_shm_dir())


def _allowed(name: str, allow: Sequence[str]) -> bool:
    if name.startswith(_NEVER):
        return False
    return any(name.startswith(entry[:-1]) if entry.endswith("*") else name == entry for entry in allow)


def worker_environment(base: Mapping[str, str], cwd: Path, shm_dir: Path, max_frame_bytes: int,
                       posix_dir: Path | str | None = None, extra_allow: Sequence[str] = ()) -> dict[str, str]:
    """The environment of a worker process: the allow-listed part of ``base`` (``ENV_ALLOW_LIST``
    plus ``extra_allow``), plus what the adapter needs.

    ``PROC_SHM_POSIX_DIR`` is always set to the folder the runner writes segments to
    (``posix_dir``, default ``posix_shm_dir()``, the same default ``ImageHandoff`` uses), so the
    worker never looks in another one.
    """
    allow = (*ENV_ALLOW_LIST, *extra_allow)
    env = {k: v for k, v in base.items() if _allowed(k, allow)}
    env.update({
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "PROC_ALGO_ROOT": str(cwd),
        "PROC_SHM_DIR": str(shm_dir),
        SHM_DIR_ENV: str(posix_dir if posix_dir is not None else posix_shm_dir()),
        "PROC_MAX_FRAME_BYTES": str(int(max_frame_bytes)),
    })
    return env
