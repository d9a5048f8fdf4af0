"""Hostile inputs for the containment benchmark, written without holding them in memory."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

_DOS_TIME, _DOS_DATE = 0, (2024 - 1980) << 9 | 1 << 5 | 1
_BATCH = 100_000


def write_zip64_entries_zip(path: Path, entries: int) -> Path:
    """A zip of ``entries`` empty stored entries, counted in zip64 end records.

    Every central-directory entry points at the same one local header, so the file costs about 53
    bytes per entry (3,000,000 entries: ~160 MB) while a reader that builds an object per entry
    needs far more memory than that. The classic end record says "see zip64" (0xFFFF / 0xFFFFFFFF).
    """
    local_name = b"0000000"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, _DOS_TIME, _DOS_DATE, 0, 0, 0,
                        len(local_name), 0) + local_name
    central_head = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 3 << 8 | 20, 20, 0, 0, _DOS_TIME, _DOS_DATE,
                               0, 0, 0, 7, 0, 0, 0, 0, 0o100644 << 16, 0)
    with path.open("wb") as out:
        out.write(local)
        cd_offset = out.tell()
        for start in range(0, entries, _BATCH):
            out.write(b"".join(central_head + b"%07d" % (i % 10_000_000)
                               for i in range(start, min(entries, start + _BATCH))))
        cd_size = out.tell() - cd_offset
        eocd64_offset = out.tell()
        out.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset))
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, 1))
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return path


def png_bytes(size: tuple[int, int] = (48, 64)) -> bytes:
    """A small valid RGB PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.full((size[0], size[1], 3), 100, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()
