"""Images for ``validate`` and ``run``: load a file (PNG/JPEG/BMP via pillow, or ``.npy``) or make one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: numpy costs ~0.4 s, and `--help` needs none of it
    import numpy as np


class ImageLoadError(ValueError):
    """The image file cannot be used; the message says why and what to do."""


def load_image(path: str | Path) -> np.ndarray[Any, Any]:
    """Read ``path`` as an ``HxWx3`` (or ``HxW``) uint8 RGB array.

    ``.npy`` files are read with numpy (no pickles); everything else needs pillow.
    """
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(f"image file not found: {p}")
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(f"cannot read {p} as a numpy array: {exc}") from exc
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ImageLoadError(f"{p}: expected a uint8 array of shape HxW or HxWx3, got {arr.dtype} {arr.shape}")
        return np.ascontiguousarray(arr)
    try:
        from PIL import Image
    except ImportError:
        raise ImageLoadError(
            f"reading {p.suffix or 'image'} files needs pillow: pip install pillow "
            "(or pass a .npy file holding a uint8 HxWx3 array)") from None
    try:
        with Image.open(p) as img:
            rgb = img.convert("RGB")
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except OSError as exc:
        raise ImageLoadError(f"cannot read image {p}: {exc}") from exc


def synthetic_image(width: int = 640, height: int = 480) -> np.ndarray[Any, Any]:
    """A deterministic, evenly lit grey test image (a smooth gradient with mild texture)."""
    import numpy as np

    ys, xs = np.mgrid[0:height, 0:width]
    base = 150.0 + 30.0 * (xs / max(width - 1, 1)) + 10.0 * np.sin(ys / 23.0)
    texture = ((xs * 7 + ys * 13) % 11).astype(np.float64) - 5.0
    gray = np.clip(base + texture, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.stack([gray, gray, gray], axis=2))
