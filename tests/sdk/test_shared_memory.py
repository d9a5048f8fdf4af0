"""Image segments in real shared memory (tmpfs), and the public SDK's file scheme."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import read_image_from_shared_memory, write_image_array_to_shared_memory
from procvision_algorithm_sdk.errors import ProcVisionError
from procvision_algorithm_sdk.shared_memory import (
    HEADER_SIZE,
    SHM_PREFIX,
    ImageSegment,
    cleanup_stale_segments,
    default_shm_dir,
)


def rgb_image(h: int = 6, w: int = 5) -> np.ndarray:
    rng = np.random.default_rng(1234)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def code_of(exc: pytest.ExceptionInfo[ProcVisionError]) -> str:
    return exc.value.error_code


def test_default_dir_follows_the_environment(shm_dir: Path) -> None:
    assert default_shm_dir() == str(shm_dir)


def test_segment_is_a_named_file_in_the_shm_dir_and_unlink_removes_it(shm_dir: Path) -> None:
    seg = ImageSegment.create_array(rgb_image())
    path = shm_dir / seg.id
    assert seg.id.startswith(SHM_PREFIX) and len(seg.id) == len(SHM_PREFIX) + 32
    assert path.is_file() and path.stat().st_size == HEADER_SIZE + 6 * 5 * 3
    assert seg.nbytes == 6 * 5 * 3
    seg.unlink()
    assert not path.exists()
    seg.unlink()  # idempotent
    seg.close()
    assert os.listdir(shm_dir) == []


def test_context_manager_unlinks(shm_dir: Path) -> None:
    with ImageSegment.create_array(rgb_image()) as seg:
        assert (shm_dir / seg.id).exists()
    assert os.listdir(shm_dir) == []


def test_rgb_round_trip_is_zero_copy_and_copy_on_write(shm_dir: Path) -> None:
    img = rgb_image()
    with ImageSegment.create_array(img) as seg:
        meta = seg.image_meta(camera_id="cam1", timestamp_ms=42)
        assert meta == {"width": 5, "height": 6, "timestamp_ms": 42, "camera_id": "cam1", "color_space": "RGB"}
        out = read_image_from_shared_memory(seg.id, meta)
        assert out.shape == (6, 5, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, img)
        assert not out.flags.owndata  # a view of the mapping, not a copy
        out[0, 0] = [1, 2, 3]  # private mapping: the owner's pixels are untouched
        assert seg.array is not None
        np.testing.assert_array_equal(seg.array, img)
        again = read_image_from_shared_memory(seg.id, meta)
        np.testing.assert_array_equal(again, img)


def test_bgr_is_returned_as_rgb(shm_dir: Path) -> None:
    img = rgb_image()
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    with ImageSegment.create_array(bgr) as seg:
        out = read_image_from_shared_memory(seg.id, seg.image_meta("BGR"))
    np.testing.assert_array_equal(out, img)
    assert out.flags.c_contiguous


@pytest.mark.parametrize("shape", [(4, 7), (4, 7, 1)])
def test_mono_is_expanded_to_three_channels(shm_dir: Path, shape: tuple) -> None:
    mono = np.arange(28, dtype=np.uint8).reshape(shape)
    with ImageSegment.create_array(mono) as seg:
        meta = seg.image_meta()
        assert meta["color_space"] == "Mono8"
        out = read_image_from_shared_memory(seg.id, meta)
    assert out.shape == (4, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono.reshape(4, 7))


def test_allocate_fills_in_place(shm_dir: Path) -> None:
    img = rgb_image(3, 4)
    with ImageSegment.allocate(3, 4) as seg:
        assert seg.array is not None and seg.array.shape == (3, 4, 3)
        assert not seg.array.any()
        seg.array[...] = img
        out = read_image_from_shared_memory(seg.id, seg.image_meta())
    np.testing.assert_array_equal(out, img)


def test_encoded_png_is_decoded(shm_dir: Path) -> None:
    from PIL import Image

    img = rgb_image(8, 9)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    with ImageSegment.create_encoded(buf.getvalue()) as seg:
        meta = seg.image_meta()
        assert (meta["width"], meta["height"]) == (9, 8)
        out = read_image_from_shared_memory(seg.id, meta)
        np.testing.assert_array_equal(out, img)
        with pytest.raises(ProcVisionError) as exc:
            read_image_from_shared_memory(seg.id, {"width": 10, "height": 8})
        assert code_of(exc) == "1002"


def test_encoded_without_pillow_is_a_clear_1002(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ImageSegment.create_encoded(b"\x89PNG not really", width=2, height=2) as seg:
        monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
        with pytest.raises(ProcVisionError) as exc:
            read_image_from_shared_memory(seg.id, seg.image_meta())
    assert code_of(exc) == "1002" and "pillow" in exc.value.message


def test_garbage_encoded_bytes_fail_with_1002(shm_dir: Path) -> None:
    with ImageSegment.create_encoded(b"definitely not an image", width=2, height=2) as seg, \
            pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory(seg.id, seg.image_meta())
    assert code_of(exc) == "1002"


def test_missing_segment_is_1007_never_a_black_image(shm_dir: Path) -> None:
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory(SHM_PREFIX + "0" * 32, {"width": 5, "height": 6})
    assert code_of(exc) == "1007"
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory("pvshm-../../etc/passwd", {"width": 5, "height": 6})
    assert code_of(exc) == "1007"


def test_size_mismatch_and_bad_header_are_1002(shm_dir: Path) -> None:
    with ImageSegment.create_array(rgb_image()) as seg:
        with pytest.raises(ProcVisionError) as exc:
            read_image_from_shared_memory(seg.id, {"width": 6, "height": 6, "color_space": "RGB"})
        assert code_of(exc) == "1002"
    bad = shm_dir / (SHM_PREFIX + "bad")
    bad.write_bytes(b"XXXX" + b"\0" * 100)
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory(bad.name, {})
    assert code_of(exc) == "1002"
    short = shm_dir / (SHM_PREFIX + "short")
    short.write_bytes(b"PV")
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory(short.name, {})
    assert code_of(exc) == "1002"


def test_truncated_payload_is_1002(shm_dir: Path) -> None:
    seg = ImageSegment.create_array(rgb_image())
    seg.close()
    path = shm_dir / seg.id
    os.truncate(path, HEADER_SIZE + 10)
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory(seg.id, {})
    assert code_of(exc) == "1002"
    seg.unlink()


def test_unknown_color_space_is_1008(shm_dir: Path) -> None:
    with ImageSegment.create_array(rgb_image()) as seg, pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory(seg.id, seg.image_meta("YUV422"))
    assert code_of(exc) == "1008"


def test_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageSegment.create_array(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        ImageSegment.create_array(np.zeros((2, 2, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        ImageSegment.allocate(0, 5)


def test_write_helper_with_segment_id(shm_dir: Path) -> None:
    img = rgb_image()
    sid = SHM_PREFIX + "dev-image-1"
    write_image_array_to_shared_memory(sid, img)
    write_image_array_to_shared_memory(sid, img)  # replacing is allowed
    out = read_image_from_shared_memory(sid, {"width": 5, "height": 6, "color_space": "RGB"})
    np.testing.assert_array_equal(out, img)
    assert cleanup_stale_segments() == 1
    assert os.listdir(shm_dir) == []


def test_public_file_scheme_npy_and_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("PROC_SHM_DIR", str(tmp_path))
    img = rgb_image()
    write_image_array_to_shared_memory("cam 1/frame:7", img)
    assert (tmp_path / "cam_1_frame_7.npy").is_file()
    out = read_image_from_shared_memory("cam 1/frame:7", {"width": 5, "height": 6, "color_space": "BGR"})
    np.testing.assert_array_equal(out, img[:, :, ::-1])
    Image.fromarray(img).save(tmp_path / "enc.bin", format="PNG")
    np.testing.assert_array_equal(read_image_from_shared_memory("enc", {"width": 5, "height": 6}), img)
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory("nothing-here", {"width": 5, "height": 6})
    assert code_of(exc) == "1007"
    np.save(tmp_path / "floats.npy", np.zeros((6, 5, 3), dtype=np.float64))
    with pytest.raises(ProcVisionError) as exc:
        read_image_from_shared_memory("floats", {"width": 5, "height": 6})
    assert code_of(exc) == "1002"


def test_cleanup_only_removes_old_segments_with_our_prefix(shm_dir: Path) -> None:
    old = ImageSegment.create_array(rgb_image())
    old.close()
    past = time.time() - 3600
    os.utime(shm_dir / old.id, (past, past))
    fresh = ImageSegment.create_array(rgb_image())
    (shm_dir / "someone-else").write_bytes(b"x")
    assert cleanup_stale_segments(str(shm_dir), older_than_s=60) == 1
    assert sorted(os.listdir(shm_dir)) == sorted([fresh.id, "someone-else"])
    fresh.unlink()


def test_segment_survives_a_reader_process_exiting(shm_dir: Path) -> None:
    """The resource-tracker bug: a reader's exit must not unlink the owner's segment."""
    img = rgb_image(16, 16)
    with ImageSegment.create_array(img) as seg:
        meta = seg.image_meta()
        script = textwrap.dedent(f"""
            import sys
            from procvision_algorithm_sdk import read_image_from_shared_memory
            img = read_image_from_shared_memory({seg.id!r}, {meta!r})
            img[:] = 0  # scribble on the private mapping
            print(int(img.shape[0]))
        """)
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.strip() == "16"
            assert (shm_dir / seg.id).exists()
        np.testing.assert_array_equal(read_image_from_shared_memory(seg.id, meta), img)
    assert os.listdir(shm_dir) == []


def test_segment_id_with_a_trailing_newline_is_refused() -> None:
    # "$" in a pattern would accept "pvshm-x\n": ids are matched whole.
    with pytest.raises(ProcVisionError) as caught:
        read_image_from_shared_memory("pvshm-abc\n", {"width": 2, "height": 2, "channels": 3})
    assert caught.value.error_code == "1007" and "invalid shared memory id" in str(caught.value)
