"""Where two images differ, with numpy only: grey levels, per-cell differences, connected regions.

The images are compared in square cells (block means), which absorbs pixel noise and a small
misplacement; cells that differ are grouped into 8-connected regions with a union-find over the
flagged cells only, so the Python loop stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    """A connected group of differing cells, in pixel coordinates."""

    x: int
    y: int
    width: int
    height: int
    cells: int
    score: float  # mean absolute grey-level difference in the region, 0..1


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601) of an ``HxWx3`` uint8 image as float32 (``HxW`` passes through)."""
    if image.ndim == 2:
        return image.astype(np.float32)
    rgb = image[:, :, :3].astype(np.float32)
    return rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114


def cell_means(gray: np.ndarray, cell: int) -> np.ndarray:
    """Mean of each ``cell x cell`` block; partial blocks at the right and bottom edges count too."""
    h, w = gray.shape
    rows, cols = -(-h // cell), -(-w // cell)
    padded = np.zeros((rows * cell, cols * cell), dtype=np.float32)
    counts = np.zeros_like(padded)
    padded[:h, :w] = gray
    counts[:h, :w] = 1.0
    sums = padded.reshape(rows, cell, cols, cell).sum(axis=(1, 3))
    n = counts.reshape(rows, cell, cols, cell).sum(axis=(1, 3))
    return sums / np.maximum(n, 1.0)


def _find(parent: dict[int, int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def differing_regions(diff_cells: np.ndarray, flagged: np.ndarray, cell: int, shape: tuple[int, int],
                      min_cells: int) -> list[Region]:
    """8-connected regions of ``flagged`` cells (at least ``min_cells``), largest difference first."""
    rows, cols = flagged.shape
    ys, xs = np.nonzero(flagged)
    ids = {int(y) * cols + int(x) for y, x in zip(ys, xs)}
    parent = {i: i for i in ids}
    for i in ids:
        y, x = divmod(i, cols)
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
            j = (y + dy) * cols + (x + dx)
            if 0 <= y + dy < rows and 0 <= x + dx < cols and j in parent:
                a, b = _find(parent, i), _find(parent, j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in ids:
        groups.setdefault(_find(parent, i), []).append(i)
    height, width = shape
    regions = []
    for members in groups.values():
        if len(members) < min_cells:
            continue
        cy = [m // cols for m in members]
        cx = [m % cols for m in members]
        x0, y0 = min(cx) * cell, min(cy) * cell
        x1, y1 = min((max(cx) + 1) * cell, width), min((max(cy) + 1) * cell, height)
        score = float(np.mean([diff_cells[m // cols, m % cols] for m in members])) / 255.0
        regions.append(Region(x0, y0, x1 - x0, y1 - y0, len(members), round(min(score, 1.0), 3)))
    regions.sort(key=lambda r: (-r.score * r.cells, r.y, r.x))
    return regions
