"""ImageSink turns a streamed image into the same array decode_image would give, whatever the chunking,
and refuses bad data with the codes decode_image uses."""

from __future__ import annotations

import io

import numpy as np
import pytest

from runner.api.streaming.buffers import BufferPool
from runner.api.streaming.image_sink import ImageSink
from runner.errors import RunnerError
from runner.routing.images import decode_image


def _npy(arr: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, arr, allow_pickle=False)
    else:
        np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


def _feed(data: bytes, step: int) -> ImageSink:
    sink = ImageSink("image", "cam.npy", 10_000_000, BufferPool())
    for start in range(0, len(data), step):
        sink.write(data[start:start + step])
    return sink


@pytest.mark.parametrize("step", [1, 5, 64, 1 << 20])
@pytest.mark.parametrize("version", [None, (2, 0)])
def test_npy_matches_decode_image_whatever_the_chunks(step: int, version: tuple[int, int] | None) -> None:
    arr = np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)
    data = _npy(arr, version)
    got = _feed(data, step).image(color_space="BGR", input_order="RGB", camera_id="c", timestamp_ms=1)
    want = decode_image(data, color_space="BGR", input_order="RGB")
    assert np.array_equal(got.array, want.array) and got.color_space == "BGR" and got.camera_id == "c"


def test_fortran_order_and_single_channel_arrays() -> None:
    arr = np.asfortranarray(np.arange(20, dtype=np.uint8).reshape(4, 5))
    assert np.array_equal(_feed(_npy(arr), 3).image(color_space="RGB", input_order="RGB", camera_id="",
                                                     timestamp_ms=None).array, arr)
    mono = np.arange(20, dtype=np.uint8).reshape(4, 5, 1)
    out = _feed(_npy(mono), 7).image(color_space="RGB", input_order="RGB", camera_id="", timestamp_ms=None)
    assert out.array.shape == (4, 5)


def test_png_is_decoded_like_decode_image() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 9, 3), 120, dtype=np.uint8)).save(buf, "PNG")
    sink = _feed(buf.getvalue(), 10)
    assert sink.needs_decode
    out = sink.image(color_space="RGB", input_order="RGB", camera_id="", timestamp_ms=None)
    assert out.array.shape == (8, 9, 3) and int(out.array[0, 0, 0]) == 120


@pytest.mark.parametrize(("data", "code"), [
    (b"GIF89a" + b"\0" * 20, "1002"),                                         # not PNG/JPEG/npy
    (_npy(np.zeros((4, 4), dtype=np.float32)), "1002"),                        # not uint8
    (_npy(np.zeros((4, 4, 4), dtype=np.uint8)), "1002"),                       # 4 channels
    (_npy(np.zeros((4, 4), dtype=np.uint8)) + b"extra", "1002"),               # data after the array
])
def test_bad_data_is_refused_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(RunnerError) as err:
        _feed(data, 16).image(color_space="RGB", input_order="RGB", camera_id="", timestamp_ms=None)
    assert str(err.value.code) == code


def test_over_the_cap_is_413_naming_max_image_bytes() -> None:
    sink = ImageSink("image", "cam.npy", 1000, BufferPool())
    with pytest.raises(RunnerError) as err:
        sink.write(_npy(np.zeros((40, 40), dtype=np.uint8)))
    assert str(err.value.code) == "2014" and err.value.details["setting"] == "max_image_bytes"


def test_truncated_and_empty_uploads_are_1002() -> None:
    data = _npy(np.zeros((4, 4), dtype=np.uint8))
    for cut in (data[:5], data[:40], data[:-3], b""):
        with pytest.raises(RunnerError) as err:
            _feed(cut, 8).image(color_space="RGB", input_order="RGB", camera_id="", timestamp_ms=None)
        assert str(err.value.code) == "1002", cut
