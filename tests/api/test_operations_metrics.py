"""The operations queue (order, states, idempotency, shutdown) and the metrics text format."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from runner.api.operations import OperationManager, fingerprint_of
from runner.api.problems import STATUS_BY_CODE, problem_dict, status_for
from runner.errors import PackageErrorCode, RunnerError
from runner.metrics import Metrics
from runner.supervision.states import State, SupervisorEvent
from tests.support.waiting import wait_until


def _stages(*names: str, result: dict[str, Any] | None = None) -> Callable[[Callable[[str], None]], dict[str, Any]]:
    def work(progress: Callable[[str], None]) -> dict[str, Any]:
        for name in names:
            progress(name)
        return result or {"ok": True}

    return work


def test_operations_run_in_order_and_report_stages() -> None:
    manager = OperationManager()
    gate = threading.Event()
    order: list[str] = []

    def first(progress: Callable[[str], None]) -> dict[str, Any]:
        progress("checking")
        gate.wait(30)
        order.append("first")
        return {"n": 1}

    def second(progress: Callable[[str], None]) -> dict[str, Any]:
        order.append("second")
        raise RunnerError(PackageErrorCode.INVALID_ZIP, "not a zip")

    op1, created = manager.submit("install", first)
    op2, _ = manager.submit("install", second)
    assert created
    wait_until(lambda: op1.state == "running" and op1.stages == ["checking"], what="op1 running")
    assert op2.state == "pending"
    gate.set()
    assert op2.done.wait(120)
    assert order == ["first", "second"]
    assert op1.state == "succeeded" and op1.result == {"n": 1}
    assert op2.state == "failed" and op2.error is not None
    assert op2.error["code"] == "2001" and op2.error["status"] == 422
    assert manager.close(120)


def test_unexpected_exception_fails_the_operation_not_the_thread() -> None:
    manager = OperationManager()

    def broken(progress: Callable[[str], None]) -> dict[str, Any]:
        raise KeyError("boom")

    op, _ = manager.submit("install", broken)
    assert op.done.wait(120) and op.state == "failed" and "KeyError" in op.error["detail"]  # type: ignore[index]
    later, _ = manager.submit("install", _stages("a"))
    assert later.done.wait(120) and later.state == "succeeded"
    assert manager.close(120)


def test_idempotency_keys() -> None:
    manager = OperationManager()
    cleaned: list[str] = []
    op, created = manager.submit("install", _stages("a"), idempotency_key="k", fingerprint="f1")
    again, created_again = manager.submit("install", _stages("a"), idempotency_key="k", fingerprint="f1",
                                          cleanup=lambda: cleaned.append("dup"))
    assert created and not created_again and again is op and cleaned == ["dup"]
    with pytest.raises(RunnerError) as info:
        manager.submit("install", _stages("a"), idempotency_key="k", fingerprint="f2")
    assert info.value.code == "2013"
    assert fingerprint_of("a", "b") != fingerprint_of("ab")
    with pytest.raises(RunnerError) as missing:
        manager.get("nope")
    assert missing.value.code == "2009"
    assert manager.close(120)


def test_close_fails_queued_work_and_refuses_new() -> None:
    manager = OperationManager()
    gate = threading.Event()

    def blocker(progress: Callable[[str], None]) -> dict[str, Any]:
        gate.wait(30)
        return {}

    running, _ = manager.submit("install", blocker)
    wait_until(lambda: running.state == "running", what="running")
    queued, _ = manager.submit("install", _stages("x"), cleanup=lambda: None)
    closer = threading.Thread(target=manager.close, args=(30,))
    closer.start()
    wait_until(lambda: queued.state == "failed", what="queued op failed")
    assert queued.error["code"] == "2011"  # type: ignore[index]
    with pytest.raises(RunnerError):
        manager.submit("install", _stages("y"))
    gate.set()
    closer.join(30)
    assert running.state == "succeeded"


def test_status_mapping_is_complete_and_consistent() -> None:
    for code in [c.value for c in PackageErrorCode]:
        assert code in STATUS_BY_CODE, code
    assert status_for("2009") == 404 and status_for("2015") == 401 and status_for("2014") == 413
    assert status_for("1005") == 504 and status_for("1011") == 502 and status_for("1015") == 503
    assert {status_for(c) for c in ("2006", "2007", "2008", "2011", "2012")} == {409}
    assert {status_for(c) for c in ("2001", "2002", "2003", "2004", "2005", "2010", "1003")} == {422}
    assert status_for("9999") == 500
    problem = problem_dict("2009", "gone", {"path": object()})
    assert problem["name"] == "not_found" and isinstance(problem["details"]["path"], str)


def test_metrics_render() -> None:
    metrics = Metrics()
    metrics.record_install("succeeded")
    metrics.record_install("failed", "drop-folder")
    metrics.record_call("a", "1", "OK", 0.004)
    metrics.record_call("a", "1", "OK", 0.2)
    metrics.record_call("a", "1", "timeout", None)
    metrics.on_event(SupervisorEvent("state", "a", "1", 0, 10, State.STARTING, State.RUNNING))
    metrics.on_event(SupervisorEvent("restart", "a", "1", 0))
    metrics.on_event(SupervisorEvent("crash", "a", "1", 0))
    text = metrics.render()
    assert 'procvision_installs_total{outcome="failed",source="drop-folder"} 1' in text
    assert 'procvision_calls_total{name="a",version="1",status="OK"} 2' in text
    assert 'procvision_call_latency_seconds_bucket{name="a",version="1",le="0.005"} 1' in text
    assert 'procvision_call_latency_seconds_bucket{name="a",version="1",le="0.25"} 2' in text
    assert 'procvision_call_latency_seconds_count{name="a",version="1"} 2' in text
    assert 'procvision_worker_restarts_total{name="a",version="1"} 1' in text
    assert 'procvision_workers{name="a",version="1",state="running"} 1' in text
    assert 'procvision_workers{name="a",version="1",state="failed"} 0' in text
    metrics.forget_version("a", "1")
    assert 'procvision_workers{name="a"' not in metrics.render()
    quoted = Metrics()
    quoted.record_call('we"ird\nname', "1", "OK", 0.1)
    assert 'name="we\\"ird\\nname"' in quoted.render()
