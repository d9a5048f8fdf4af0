"""``procvision-cli``: scaffold, check, run and package ProcVision algorithm projects.

As in the public SDK, this package's namespace holds the command functions scripts and tests call:
``main``, ``validate``, ``validate_adapter``, ``run``, ``run_adapter``, ``init_project``, ``package``
(see ``public_api``). The command-line modules of the same names are reached through
``importlib`` / ``sys.modules`` (``cli.main.COMMANDS``).
"""

from .main import main
from .public_api import init_project, package, run, run_adapter, validate, validate_adapter

__all__ = ["main", "validate", "validate_adapter", "run", "run_adapter", "init_project", "package"]
