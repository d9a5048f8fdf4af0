"""What the execute route records for the console: a bounded ring of recent calls with small
thumbnails, and per-second health buckets (injected clock: no waiting)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from runner.console.call_log import CallLog
from runner.console.health_series import SAMPLES_PER_SECOND, HealthSeries
from runner.console.thumbnails import take_thumbnail
from runner.errors import PackageErrorCode, RunnerError
from runner.supervision.dialects import CallRequest, ImageInput


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _call(pid: str = "P001", width: int = 1920, height: int = 1200) -> CallRequest:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :, 0] = 200
    return CallRequest(phase="execute", step_index=1, pid=pid, session_id=None, image=ImageInput(array=image))


def test_health_buckets_count_per_second_and_give_percentiles() -> None:
    clock = Clock()
    series = HealthSeries(60, clock=clock)
    for latency in range(1, 101):
        series.record(float(latency), error=latency > 95)
    clock.now += 2
    series.record(7.0, error=False)
    points = series.points(5)
    assert [p.calls for p in points] == [0, 0, 100, 0, 1]
    busy = points[2]
    assert busy.errors == 5
    assert busy.p50_ms == 50.0 and busy.p99_ms == 99.0
    assert points[0].p50_ms is None and points[4].p99_ms == 7.0


def test_health_window_forgets_old_seconds_and_bounds_samples() -> None:
    clock = Clock()
    series = HealthSeries(60, clock=clock)
    for _ in range(SAMPLES_PER_SECOND * 3):
        series.record(1.0, error=False)
    assert series.points(1)[0].calls == SAMPLES_PER_SECOND * 3
    clock.now += 60  # the same ring slot, a new second: the old bucket is gone
    series.record(2.0, error=True)
    assert sum(p.calls for p in series.points()) == 1
    assert series.points(1)[0].errors == 1


def test_thumbnail_is_a_small_strided_copy_encoded_on_demand() -> None:
    image = np.zeros((1200, 1920, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # blue in RGB
    thumb = take_thumbnail(image, "RGB", 160)
    assert thumb is not None
    assert thumb.pixels.shape == (100, 160, 3)
    assert not np.shares_memory(thumb.pixels, image)  # the caller's buffer may be reused at once
    assert (thumb.source_width, thumb.source_height) == (1920, 1200)
    decoded = np.asarray(Image.open(io.BytesIO(thumb.png())))
    assert decoded.shape == (100, 160, 3) and decoded[0, 0].tolist() == [0, 0, 255]
    bgr = take_thumbnail(image, "BGR", 160)
    assert bgr is not None
    assert np.asarray(Image.open(io.BytesIO(bgr.png())))[0, 0].tolist() == [255, 0, 0]
    grey = take_thumbnail(np.zeros((10, 10), dtype=np.uint8), "RGB", 160)
    assert grey is not None and grey.pixels.shape == (10, 10)


def test_recent_calls_keep_the_last_n_with_their_rectangles() -> None:
    clock = Clock()
    log = CallLog(keep=3, thumbnail_width=160, window_s=60, thumbnails_per_s=10, clock=clock)
    rect = {"x": 5, "y": 6, "width": 7, "height": 8}
    for i in range(5):
        clock.now += 0.1
        log.record(_call(pid=f"P{i}"), {"status": "OK", "latency_ms": 12.5, "served_by": {"version": "1.0.0"},
                                        "data": {"result_status": "NG", "defect_rects": [rect]}})
    log.record_failure(_call(pid="P9"), RunnerError(PackageErrorCode.NOT_FOUND, "no version for P9"), 0.0)
    recent = log.recent.list()
    assert [r.pid for r in recent] == ["P9", "P4", "P3"]
    failed, ok = recent[0].to_dict(), recent[1].to_dict()
    assert failed["status"] == "ERROR" and failed["error_code"] == "2009" and failed["message"] == "no version for P9"
    assert ok["defect_rects"] == [rect] and ok["result_status"] == "NG" and ok["latency_ms"] == 12.5
    assert ok["thumbnail"] == f"/console/calls/{ok['id']}/thumbnail.png"
    assert (ok["image_width"], ok["image_height"]) == (1920, 1200)
    assert log.recent.get(ok["id"]) is recent[1] and log.recent.get(recent[-1].id - 1) is None  # evicted
    assert sum(p.errors for p in log.health.points()) == 1


def test_thumbnails_are_taken_for_at_most_n_calls_a_second() -> None:
    clock = Clock()
    log = CallLog(keep=100, thumbnail_width=160, window_s=60, thumbnails_per_s=2, clock=clock)
    result = {"status": "OK", "latency_ms": 1.0, "data": {"result_status": "OK", "defect_rects": []}}
    for _ in range(10):  # a burst within one instant: the first call gets the thumbnail
        log.record(_call(), result)
    clock.now += 0.5
    log.record(_call(), result)
    with_thumbnail = [r.thumbnail is not None for r in reversed(log.recent.list())]
    assert with_thumbnail == [True] + [False] * 9 + [True]
    none = CallLog(keep=5, thumbnail_width=160, window_s=60, thumbnails_per_s=0, clock=clock)
    none.record(_call(), result)
    assert none.recent.list()[0].thumbnail is None and none.recent.list()[0].to_dict()["thumbnail"] is None
