"""Example ProcVision algorithm: finds dark defects (spots, scratches, holes) on a bright part."""

from .algorithm import DefectDetector

__all__ = ["DefectDetector"]
