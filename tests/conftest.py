"""Suite-wide configuration: how pytest-xdist spreads the tests over its workers."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

#: Modules whose tests are one scenario, in order, against one daemon and one browser (module-scoped
#: fixtures): all of a module's tests must run on the same worker.
IN_ORDER_MODULES = frozenset({"tests/console/test_console_in_browser.py"})

#: How a module (or a conftest above it) declares a fixture its tests share.
_SHARED_FIXTURE = re.compile(r"@pytest\.fixture\([^)]*scope=[\"']module[\"']")


@cache
def shares_a_module_fixture(module: str, rootdir: str) -> bool:
    """True when the module's tests share a module-scoped fixture (a daemon, a compat environment).

    Spread over two workers, such a module builds its fixture twice, some seconds each; kept on one
    worker it builds it once. Read from the source because the scheduler runs in the controller,
    which does not collect."""
    root = Path(rootdir)
    path = root / module
    candidates = [path, *(folder / "conftest.py" for folder in path.parents if root in folder.parents)]
    for candidate in candidates:
        try:
            if _SHARED_FIXTURE.search(candidate.read_text(encoding="utf-8")):
                return True
        except OSError:
            continue
    return False


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own grouping mark (--dist loadgroup) is not applied with the pytest this suite runs on
    # (seen: a marked module's tests were spread over both workers), so the grouping is done here.
    from xdist.scheduler import LoadScopeScheduling

    rootdir = str(config.rootpath)

    class TestOrModuleScheduling(LoadScopeScheduling):
        """``load`` for independent tests; one unit per module for the modules above and for modules
        whose tests share a module-scoped fixture."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            grouped = module in IN_ORDER_MODULES or shares_a_module_fixture(module, rootdir)
            return module if grouped else nodeid

    return TestOrModuleScheduling(config, log)
