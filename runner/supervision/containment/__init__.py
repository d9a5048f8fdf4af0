"""Bounding worker memory: one mechanism per module (cgroup v2, cgroup v1, RLIMIT_DATA, none),
chosen by ``probe.choose_containment``."""

from .base import MECHANISMS, Containment, ContainmentReport, Placement
from .probe import choose_containment
from .rlimit import is_memory_error

__all__ = ["MECHANISMS", "Containment", "ContainmentReport", "Placement", "choose_containment", "is_memory_error"]
