"""``procvision-cli``: scaffold, check, run and package ProcVision algorithm projects.

As in the public SDK, this package's namespace holds the command functions scripts and tests call:
``main``, ``validate``, ``validate_adapter``, ``run``, ``run_adapter``, ``init_project``, ``package``
(see ``public_api``). The modules of the same names are imported first, so those names stay bound
to the functions; the modules themselves are reached through ``sys.modules`` / ``importlib``
(``cli.main.COMMANDS``).
"""

import warnings as _warnings

# ``python -m procvision_algorithm_sdk.cli.main`` finds that module already imported (below) and
# runpy warns that this "may result in unpredictable behaviour"; main.py has no import-time effects.
_warnings.filterwarnings("ignore", message=r".*'procvision_algorithm_sdk\.cli\.main' found in sys\.modules",
                         category=RuntimeWarning)

from . import main as _main_module  # noqa: E402,F401 - loads the command modules before the names below
from .public_api import (  # noqa: E402 - after the command modules, so these names win
    init_project,
    main,
    package,
    run,
    run_adapter,
    validate,
    validate_adapter,
)

__all__ = ["main", "validate", "validate_adapter", "run", "run_adapter", "init_project", "package"]
