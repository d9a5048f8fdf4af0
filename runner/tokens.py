"""The token file under the root (``<root>/.token``): read by the daemon and by the CLI.

A leaf module (standard library and the error type only) so the CLI can read the token without
loading the API.
"""

from __future__ import annotations

import stat
from pathlib import Path

from runner.errors import PackageErrorCode, RunnerError


def read_token_file(path: Path) -> str | None:
    """The token stored in ``path``, or None if the file does not exist or is empty.

    RunnerError INSECURE_SETUP (2018) if group or others may read or write the file: a token
    others could read is no protection, so it is refused rather than used.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise RunnerError(PackageErrorCode.INSECURE_SETUP,
                          f"{path} has mode {mode:04o}: group or others can read the API token; "
                          f"run 'chmod 600 {path}' (or delete it to generate a new token) and start again",
                          path=str(path), mode=f"{mode:04o}")
    return text or None
