"""Suite-wide configuration: how pytest-xdist spreads the tests over its workers."""

from __future__ import annotations

from typing import Any

import pytest

#: Modules whose tests are one scenario, in order, against one daemon and one browser (module-scoped
#: fixtures): all of a module's tests must run on the same worker. Every other test is its own unit.
IN_ORDER_MODULES = frozenset({"tests/console/test_console_in_browser.py"})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own grouping mark (--dist loadgroup) is not applied with the pytest this suite runs on
    # (seen: a marked module's tests were spread over both workers), so the grouping is done here.
    from xdist.scheduler import LoadScopeScheduling

    class TestOrModuleScheduling(LoadScopeScheduling):
        """``load`` for independent tests, one unit per module for the modules above."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in IN_ORDER_MODULES else nodeid

    return TestOrModuleScheduling(config, log)
