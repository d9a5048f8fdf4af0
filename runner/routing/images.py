"""Decode the image bytes the API receives into an ``ImageInput`` for a call.

Accepted: PNG and JPEG (Pillow) and raw NumPy ``.npy`` (``np.load`` with ``allow_pickle=False``).
Sizes are checked from the header before any pixel is decoded, so a decompression bomb costs
nothing. Colour images become H x W x 3 uint8 in the requested channel order (RGB or BGR);
grayscale (Mono8) stays H x W. Anything unreadable is RunnerError 1002 ``image_load_failed`` with a
message saying what was wrong.

Copies: Pillow decodes into its own buffer, ``np.asarray`` copies it out once, and the supervisor
copies the array once more into the shared-memory segment. BGR is a view (no copy here). The data
may be a file (the API passes the spooled upload), so the encoded bytes need not sit in memory too;
``max_bytes`` bounds the decoded array (checked from the header, like the pixel count).
"""

from __future__ import annotations

import io
import re
import warnings
from typing import IO, Any

import numpy as np

from procvision_algorithm_sdk.errors import ErrorCode
from runner.errors import PackageErrorCode, RunnerError
from runner.supervision.dialects import COLOR_SPACES, ImageInput

#: Default limit on width x height (about 8K x 8K). Callers pass their own with ``max_pixels``.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
NPY_MAGIC = b"\x93NUMPY"
_MONO_MODES = {"1", "L", "LA"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def image_error(message: str, **details: Any) -> RunnerError:
    return RunnerError(ErrorCode.IMAGE_LOAD_FAILED, message, **details)


def sniff(data: bytes) -> str:
    """The format of ``data`` from its first bytes: "png", "jpeg", "npy" or "" if unknown."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data.startswith(NPY_MAGIC):
        return "npy"
    return ""


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise image_error(f"the image is empty ({width} x {height} pixels)")
    if width * height > max_pixels:
        raise image_error(f"the image is {width} x {height} = {width * height} pixels; at most {max_pixels} are "
                    "accepted; send a smaller image", width=width, height=height, max_pixels=max_pixels)


def check_bytes(width: int, height: int, channels: int, max_bytes: int | None) -> None:
    size = width * height * channels
    if max_bytes is not None and size > max_bytes:
        raise RunnerError(PackageErrorCode.PAYLOAD_TOO_LARGE,
                          f"the image decodes to {width} x {height} x {channels} = {size} bytes, over "
                          f"max_image_bytes={max_bytes}; send a smaller image or raise max_image_bytes",
                          width=width, height=height, channels=channels, limit_bytes=max_bytes,
                          setting="max_image_bytes")


def check_color_space(color_space: str) -> str:
    if color_space not in COLOR_SPACES:
        raise RunnerError(ErrorCode.UNSUPPORTED_COLOR_SPACE,
                          f"color space {color_space!r} is not supported; use one of {', '.join(COLOR_SPACES)} "
                          "(grayscale images are kept as H x W whatever the color space)")
    return color_space


def _decode_pillow(data: IO[bytes], kind: str, max_pixels: int, max_bytes: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    fmt = "PNG" if kind == "png" else "JPEG"
    try:
        # Pillow's own bomb check is a process-wide setting; ours runs on the header instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(data, formats=[fmt])
            check_pixels(img.width, img.height, max_pixels)
            if img.mode in _HIGH_DEPTH_MODES:
                raise image_error(f"the {fmt} image has {img.mode!r} pixels; only 8-bit images are accepted "
                            "(convert it to 8-bit grayscale or RGB)", mode=img.mode)
            target = "L" if img.mode in _MONO_MODES else "RGB"
            check_bytes(img.width, img.height, 1 if target == "L" else 3, max_bytes)
            decoded: Image.Image = img if img.mode == target else img.convert(target)
            decoded.load()
            return np.asarray(decoded)
    except RunnerError:
        raise
    except UnidentifiedImageError as exc:
        # Pillow's message names the stream object (a Python repr), which says nothing to a user.
        raise image_error(f"the file is not a readable {fmt} image (its header is not one Pillow recognises); "
                          "send a complete PNG or JPEG file", format=fmt.lower()) from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise image_error(f"the {fmt} image could not be decoded ({_reason(exc)}); send a complete PNG or JPEG "
                          "file", format=fmt.lower()) from exc


def _reason(exc: BaseException) -> str:
    """The decoder's reason without Python object reprs (``<_io.BytesIO object at 0x...>``)."""
    text = re.sub(r"<[\w.]+ object at 0x[0-9a-fA-F]+>", "the upload", str(exc)).strip()
    return text or type(exc).__name__


def check_array_header(shape: tuple[int, ...], dtype: Any, max_pixels: int, max_bytes: int | None,
                       what: str = "the .npy array") -> None:
    """Refuse (1002 / 2014) an array header that is not a uint8 H x W or H x W x 1|3 image within the limits."""
    if dtype != np.uint8:
        raise image_error(f"{what} has dtype {dtype}; images must be uint8", format="npy", dtype=str(dtype))
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
        # No H x W x 4: dropping an alpha channel silently could hide that the wrong array was sent.
        raise image_error(f"{what} has shape {tuple(int(n) for n in shape)}; expected H x W (mono) or "
                          "H x W x 3 (RGB/BGR); convert it before sending", format="npy", shape=list(shape))
    check_pixels(int(shape[1]), int(shape[0]), max_pixels)
    check_bytes(int(shape[1]), int(shape[0]), int(shape[2]) if len(shape) == 3 else 1, max_bytes)


def _decode_npy(stream: IO[bytes], max_pixels: int, max_bytes: int | None) -> np.ndarray:
    try:
        major, _minor = np.lib.format.read_magic(stream)
        if major == 1:
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, OSError) as exc:
        raise image_error(f"the .npy header could not be read ({exc})", format="npy") from exc
    check_array_header(tuple(shape), dtype, max_pixels, max_bytes)
    stream.seek(0)
    try:
        arr = np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise image_error(f"the .npy array could not be read ({exc}); is the file complete?", format="npy") from exc
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return arr


def decode_image(data: bytes | IO[bytes], *, color_space: str = "RGB", camera_id: str = "",
                 timestamp_ms: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 input_order: str = "RGB", max_bytes: int | None = None) -> ImageInput:
    """Turn uploaded bytes (or a seekable binary file) into an ``ImageInput`` holding a uint8 array.

    ``color_space`` is the channel order the algorithm receives (RGB or BGR). PNG and JPEG decode
    to RGB; for ``.npy`` arrays ``input_order`` says which order the array is already in. Mono8
    images stay H x W. Raises RunnerError 1002 for unreadable or oversized data and 1008 for an
    unknown color space; 2014 when the decoded array would be over ``max_bytes``.
    """
    target = check_color_space(color_space)
    source = check_color_space(input_order)
    if isinstance(data, (bytes, bytearray, memoryview)):
        stream: IO[bytes] = io.BytesIO(data)
    else:
        stream = data
        stream.seek(0)
    head = stream.read(16)
    stream.seek(0)
    if not head:
        raise image_error("no image data was sent")
    kind = sniff(head)
    if kind in ("png", "jpeg"):
        arr = _decode_pillow(stream, kind, max_pixels, max_bytes)
        source = "RGB"
    elif kind == "npy":
        arr = _decode_npy(stream, max_pixels, max_bytes)
    else:
        raise image_error("the image data is not PNG, JPEG or NumPy .npy (unrecognised first bytes "
                    f"{head[:8].hex()}); send one of those formats", first_bytes=head[:8].hex())
    if arr.ndim == 3 and source != target:
        arr = arr[:, :, ::-1]
    return ImageInput(array=arr, color_space=target, camera_id=camera_id, timestamp_ms=timestamp_ms)
