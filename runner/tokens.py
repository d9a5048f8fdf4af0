"""The token file under the root (``<root>/.token``): read by the daemon and by the CLI.

A leaf module (standard library only) so the CLI can read the token without loading the API.
"""

from __future__ import annotations

from pathlib import Path


def read_token_file(path: Path) -> str | None:
    """The token stored in ``path``, or None if the file does not exist or is empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None
