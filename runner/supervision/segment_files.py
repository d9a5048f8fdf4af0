"""The files behind image segments: spares made and faulted in, named, lease-tested and freed.

``SegmentPool`` (``segments.py``) decides when; this module does the kernel work. A spare is an
unnamed tmpfs file (``O_TMPFILE``) until it is linked under its id; ``unused_elsewhere`` proves with
an instant write lease that no other process has a file open or mapped.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import signal
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from procvision_algorithm_sdk.shared_memory import HEADER_SIZE, SEGMENT_MODE, SHM_PREFIX, ImageSegment

#: Sent to this process when someone opens a file while it holds a lease (only for an instant).
#: Ignored by default; the kernel's default, SIGIO, would terminate the process.
LEASE_SIGNAL = signal.SIGURG

Shape = tuple[int, int, int]


def unlink_name(path: str, segment_id: str, errors: list[str]) -> None:
    """Remove a segment's name; a name already gone is fine, any other failure is recorded."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        errors.append(f"{segment_id}: {exc}")


@dataclass
class Spare:
    """A prepared segment and the read-write fd this pool keeps on its file (for lease tests).

    ``named`` False: a new unnamed file, linked under ``segment.id`` when taken. True: a recycled
    segment, already parked under ``segment.id`` (an id no one was told yet).
    """

    segment: ImageSegment
    fd: int
    named: bool = False


@dataclass
class Held:
    """A segment to free: its mapping and (if any) an fd that keeps its pages until closed."""

    segment: ImageSegment
    fd: int | None


def detach(segment: ImageSegment, errors: list[str]) -> Held:
    """A used segment the pool did not make, its name removed: an fd holds its pages (if it could
    still be opened) so the unlink is only a name removal and the pages are freed later."""
    held = Held(segment, None)
    try:
        held.fd = os.open(segment.path, os.O_RDONLY)
    except FileNotFoundError:
        pass  # already removed: only the mapping is left to free
    except OSError as exc:
        errors.append(f"{segment.id}: {exc}")
    unlink_name(segment.path, segment.id, errors)
    return held


def unused_elsewhere(fd: int) -> bool:
    """Whether ``fd``'s file is, at this instant, open or mapped through no other open file
    description than ``fd``'s own (and its dups, such as this process's own mapping of it).

    Asks for a write lease and releases it at once: Linux grants one only in that case, and a
    mapping keeps its file description alive until it is unmapped. False if refused because the
    file is held elsewhere. Raises OSError if leases cannot be used here at all (EACCES: not the
    file's owner and no CAP_LEASE; EINVAL: leases disabled or unsupported by the file system).
    """
    # Releasing a lease resets the descriptor's signal: set it before every lease.
    fcntl.fcntl(fd, fcntl.F_SETSIG, LEASE_SIGNAL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return False
        raise
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return True


def make_spare(shm_dir: str, shape: Shape) -> Spare:
    """A new unnamed raw segment of ``shape`` in ``shm_dir``: pages allocated and faulted into this
    process, header written. ``take`` links it under ``segment.id`` when a call needs it.

    ``posix_fallocate`` makes a full tmpfs fail here with ENOSPC instead of a SIGBUS on a later write
    into the mapping. The pages are faulted in by reading /dev/zero into the mapping: unlike
    ``MAP_POPULATE`` or ``madvise`` that runs with the GIL released, so calls on other threads do not
    stall meanwhile.
    """
    height, width, channels = shape
    segment_id = SHM_PREFIX + uuid.uuid4().hex
    size = HEADER_SIZE + height * width * channels
    dir_fd = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_RDWR, SEGMENT_MODE, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    mm: mmap.mmap | None = None
    try:
        os.posix_fallocate(fd, 0, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        fault_in(mm)
        segment = ImageSegment.adopt_raw(segment_id, os.path.join(shm_dir, segment_id), mm, height, width, channels)
    except BaseException:
        if mm is not None:
            mm.close()
        os.close(fd)
        raise
    return Spare(segment, fd)


def link_spare(spare: Spare, shm_dir: str) -> None:
    """Give an unnamed spare its id (its file name). The fd stays open for later lease tests."""
    dir_fd = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Relative to a directory fd: an absolute target can fail with EXDEV where /dev/shm is
        # mounted twice (the magic /proc link and the path resolve to different mounts).
        os.link(f"/proc/self/fd/{spare.fd}", os.path.basename(spare.segment.path), dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def fault_in(mm: mmap.mmap) -> None:
    zero = os.open("/dev/zero", os.O_RDONLY)
    try:
        with memoryview(mm) as view:
            done = 0
            while done < len(view):
                got = os.readv(zero, [view[done:]])
                if got <= 0:
                    raise OSError("could not pre-fault a shared memory segment: /dev/zero gave no data")
                done += got
    finally:
        os.close(zero)


def release_at_exit(cond: threading.Condition, stop: threading.Event, spares: list[Spare],
                     retired: list[Held], out: dict[str, Spare]) -> None:
    """Exit-time cleanup of a pool never closed (a spare finished later frees itself: stop is set)."""
    with cond:
        stop.set()
        cond.notify_all()
        leftovers = [Held(s.segment, s.fd) for s in spares] + retired + [Held(s.segment, s.fd) for s in out.values()]
        spares.clear()
        retired.clear()
        out.clear()
    free_all(leftovers)  # at exit nobody is left to report a failure to


def free_all(held: Iterable[Held]) -> list[str]:
    """Unmap each segment, remove its name if it still has one, close the fd holding its pages."""
    errors: list[str] = []
    for item in held:
        try:
            item.segment.unlink()  # FileNotFoundError (name already gone) is not an error there
        except OSError as exc:
            errors.append(f"{item.segment.id}: {exc}")
        if item.fd is not None:
            try:
                os.close(item.fd)
            except OSError as exc:
                errors.append(f"{item.segment.id}: {exc}")
    return errors


__all__ = ["LEASE_SIGNAL", "Held", "Shape", "Spare", "detach", "fault_in", "free_all", "link_spare", "make_spare",
           "release_at_exit", "unlink_name", "unused_elsewhere"]
