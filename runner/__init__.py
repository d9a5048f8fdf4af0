"""ProcVision Runner: installs, isolates, runs and supervises ProcVision algorithm packages."""

__version__ = "1.0.0"
