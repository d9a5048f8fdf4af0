"""images.decode_image: PNG/JPEG/.npy bytes to ImageInput with limits and clear 1002 errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from runner.errors import RunnerError
from runner.routing.images import decode_image, sniff


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(12, 17, 3), dtype=np.uint8)


def test_png_decodes_to_exact_rgb_pixels(rgb: np.ndarray) -> None:
    image = decode_image(png(rgb), camera_id="cam1", timestamp_ms=5)
    assert image.array is not None and image.encoded is None
    assert np.array_equal(image.array, rgb)
    assert (image.color_space, image.camera_id, image.timestamp_ms) == ("RGB", "cam1", 5)


def test_bgr_reverses_channels(rgb: np.ndarray) -> None:
    image = decode_image(png(rgb), color_space="BGR")
    assert image.array is not None and np.array_equal(image.array, rgb[:, :, ::-1])
    assert image.color_space == "BGR"


def test_jpeg_decodes_to_close_pixels() -> None:
    flat = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(flat).save(buf, format="JPEG", quality=95)
    image = decode_image(buf.getvalue())
    assert image.array is not None and image.array.shape == (16, 16, 3)
    assert np.abs(image.array.astype(int) - flat.astype(int)).max() <= 3


def test_mono8_png_stays_hxw() -> None:
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10)
    image = decode_image(png(gray), color_space="BGR")
    assert image.array is not None and image.array.shape == (6, 10)
    assert np.array_equal(image.array, gray)


def test_rgba_and_palette_become_rgb(rgb: np.ndarray) -> None:
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    image = decode_image(png(rgba))
    assert image.array is not None and np.array_equal(image.array, rgb)
    pal = Image.fromarray(rgb).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    assert decode_image(buf.getvalue()).array.shape == (12, 17, 3)  # type: ignore[union-attr]


def test_npy_array_kept_and_channel_order_respected(rgb: np.ndarray) -> None:
    image = decode_image(npy(rgb))
    assert image.array is not None and np.array_equal(image.array, rgb)
    as_bgr = decode_image(npy(rgb), color_space="BGR", input_order="RGB")
    assert np.array_equal(as_bgr.array, rgb[:, :, ::-1])  # type: ignore[arg-type]
    same = decode_image(npy(rgb), color_space="BGR", input_order="BGR")
    assert np.array_equal(same.array, rgb)  # type: ignore[arg-type]


def test_npy_single_channel_is_mono(rgb: np.ndarray) -> None:
    mono = decode_image(npy(rgb[:, :, :1]))
    assert mono.array is not None and mono.array.shape == (12, 17)


@pytest.mark.parametrize(("arr", "words"), [
    (np.zeros((4, 4), dtype=np.float32), "uint8"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "shape"),
    (np.zeros((4, 4, 4), dtype=np.uint8), "(4, 4, 4)"),
    (np.zeros((4,), dtype=np.uint8), "shape"),
])
def test_bad_npy_arrays_are_1002(arr: np.ndarray, words: str) -> None:
    with pytest.raises(RunnerError) as info:
        decode_image(npy(arr))
    assert info.value.code == "1002" and words in info.value.message


def test_pickled_npy_is_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RunnerError) as info:
        decode_image(buf.getvalue())
    assert info.value.code == "1002"


def test_truncated_files_are_1002(rgb: np.ndarray) -> None:
    for data in (png(rgb)[:40], npy(rgb)[:-10]):
        with pytest.raises(RunnerError) as info:
            decode_image(data)
        assert info.value.code == "1002"


def test_unknown_bytes_and_empty_are_1002() -> None:
    with pytest.raises(RunnerError) as info:
        decode_image(b"GIF89a....")
    assert info.value.code == "1002" and "PNG, JPEG or NumPy" in info.value.message
    with pytest.raises(RunnerError) as info:
        decode_image(b"")
    assert info.value.code == "1002"


def test_pixel_limit_is_checked_from_the_header(rgb: np.ndarray) -> None:
    with pytest.raises(RunnerError) as info:
        decode_image(png(rgb), max_pixels=100)
    assert info.value.code == "1002" and "at most 100" in info.value.message
    with pytest.raises(RunnerError):
        decode_image(npy(rgb), max_pixels=100)
    # A header claiming a huge image (30 GB) is refused before any pixel is read or allocated.
    with pytest.raises(RunnerError) as info:
        decode_image(_npy_with_header((100000, 100000, 3)))
    assert "pixels" in info.value.message


def _npy_magic() -> bytes:
    return np.lib.format.magic(1, 0)


def _npy_with_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_sixteen_bit_png_is_refused() -> None:
    deep = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    buf = io.BytesIO()
    Image.fromarray(deep).save(buf, format="PNG")
    with pytest.raises(RunnerError) as info:
        decode_image(buf.getvalue())
    assert info.value.code == "1002" and "8-bit" in info.value.message


def test_unknown_color_space_is_1008(rgb: np.ndarray) -> None:
    with pytest.raises(RunnerError) as info:
        decode_image(png(rgb), color_space="HSV")
    assert info.value.code == "1008"


def test_sniff() -> None:
    assert sniff(b"\x89PNG\r\n\x1a\nxxx") == "png"
    assert sniff(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff(_npy_magic()) == "npy"
    assert sniff(b"hello") == ""
