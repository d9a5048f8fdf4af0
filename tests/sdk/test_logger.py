"""StructuredLogger: JSON lines on stderr, never on stdout."""

from __future__ import annotations

import io
import json
import sys

import pytest

from procvision_algorithm_sdk import Diagnostics, StructuredLogger


def test_records_are_json_lines_with_level_time_message_and_fields() -> None:
    sink = io.StringIO()
    log = StructuredLogger(sink)
    log.info("started", step=1)
    log.debug("detail")
    log.warning("slow", elapsed_ms=12.5)
    log.error("failed", error_code="1002", obj=object())
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [r["level"] for r in records] == ["info", "debug", "warning", "error"]
    assert records[0]["message"] == "started" and records[0]["step"] == 1
    assert all(isinstance(r["timestamp_ms"], int) and r["timestamp_ms"] > 0 for r in records)
    assert records[3]["error_code"] == "1002" and records[3]["obj"].startswith("<object")


def test_default_sink_is_stderr_and_stdout_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    StructuredLogger().info("to stderr")
    StructuredLogger(sys.stdout).info("asked for stdout")
    out, err = capsys.readouterr()
    assert out == ""
    lines = [json.loads(line) for line in err.splitlines()]
    assert [r["message"] for r in lines] == ["to stderr", "asked for stdout"]


def test_bound_fields_are_added_to_every_record() -> None:
    sink = io.StringIO()
    log = StructuredLogger(sink).bind(component="x")
    log.info("a", k=1)
    record = json.loads(sink.getvalue())
    assert record["component"] == "x" and record["k"] == 1


def test_diagnostics_publish_and_snapshot() -> None:
    d = Diagnostics()
    d.publish("model", "v2")
    snap = d.get()
    snap["model"] = "changed"
    assert d.get() == {"model": "v2"}
    d.clear()
    assert d.get() == {}
