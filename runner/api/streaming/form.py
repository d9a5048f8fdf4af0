"""The body of ``POST /execute`` read from the ASGI stream: multipart, a raw ``.npy`` or raw pixels.

Multipart goes through ``MultipartReader`` (multipart_reader.py: delimiters found at C speed,
part bytes passed on as memoryviews of the received chunks); the parts named ``image`` /
``guide_image`` go into ``ImageSink``s, the other (text) parts are kept, capped in total (with
their headers) at ``max_json_body_bytes``; other file parts are dropped. A raw body
(``application/x-npy``, or ``application/octet-stream`` with ``X-Image-Shape: H,W[,C]``) is the
image itself; its fields come from the query string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from python_multipart.multipart import parse_options_header

from runner.errors import PackageErrorCode, RunnerError
from runner.supervision.dialects.reservation import ImageReservation

from ..limits import too_large
from .buffers import BufferPool
from .image_sink import ImageSink, Reserver
from .multipart_reader import MalformedMultipart, MultipartReader
from .socket_to_memory import BodyInto

#: Worker shared memory for the image, given the fields known so far (pid, session_id) and its shape.
FieldReserver = Callable[[Mapping[str, str], tuple[int, ...]], ImageReservation | None]

IMAGE_FIELDS = ("image", "guide_image")
NPY_TYPES = frozenset({b"application/x-npy", b"application/npy"})
PIXELS_TYPE = b"application/octet-stream"
SHAPE_HEADER = "x-image-shape"


@dataclass
class ReceivedBody:
    """Text fields (as str) and the image sinks of one /execute body."""

    fields: dict[str, str] = field(default_factory=dict)
    images: dict[str, ImageSink] = field(default_factory=dict)
    #: Image bytes the socket wrote straight into their memory (``socket_to_memory``).
    direct_bytes: int = 0

    @property
    def streamed_bytes(self) -> int:
        """Image bytes that came through ASGI messages (copied into their memory by the daemon)."""
        return sum(sink.size for sink in self.images.values()) - self.direct_bytes

    def release(self) -> list[str]:
        """Give every image's memory back; returns where each had landed (see ``ImageSink.release``)."""
        landed = [sink.release() for sink in self.images.values()]
        return [where for where in landed if where is not None]


def _invalid(message: str, **details: Any) -> RunnerError:
    return RunnerError(PackageErrorCode.INVALID_REQUEST, message, **details)


class _Parts:
    """``PartHandler`` of one /execute form: images into sinks, text parts into capped buffers."""

    def __init__(self, body: ReceivedBody, image_limit: int, fields_limit: int, pool: BufferPool,
                 reserve: FieldReserver | None = None) -> None:
        self.body = body
        self.reserve = reserve
        self.image_limit = image_limit
        self.fields_limit = fields_limit
        self.pool = pool
        self.fields_size = 0
        self._sink: ImageSink | None = None
        self._text: bytearray | None = None
        self._name = ""

    def begin(self, headers: dict[bytes, bytes]) -> None:
        self._sink, self._text, self._name = None, None, ""
        # Part headers count against the text cap, as the fields they describe do.
        self._charge(sum(len(name) + len(value) for name, value in headers.items()))
        _, params = parse_options_header(headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name in IMAGE_FIELDS:
            if self._name in self.body.images:
                raise _invalid(f"the multipart field {self._name!r} was sent twice; send one image per field",
                               field=self._name)
            label = params.get(b"filename", b"").decode("utf-8", "replace") or self._name
            self._sink = ImageSink(self._name, label, self.image_limit, self.pool,
                                   reserve=self._reserver() if self._name == "image" else None)
            self.body.images[self._name] = self._sink
        elif b"filename" not in params:
            self._text = bytearray()

    def _reserver(self) -> Reserver | None:
        reserve, fields = self.reserve, self.body.fields
        if reserve is None:
            return None
        # Asked once the image's shape is known: the fields sent before the image (pid first, as
        # clients do) say which version's worker gets the call.
        return lambda shape: reserve(fields, shape)

    def _charge(self, size: int) -> None:
        self.fields_size += size
        if self.fields_size > self.fields_limit:
            raise too_large("the text fields of the request", self.fields_limit, "max_json_body_bytes")

    def data(self, view: memoryview) -> None:
        if self._sink is not None:
            self._sink.write(view)
        elif self._text is not None:
            self._charge(len(view))
            self._text += view
        # A file part with another name is not ours to keep: its bytes are dropped as they pass.

    def wanted(self) -> int:
        # A sized image (an .npy past its header) says how many bytes it still needs: the reader
        # passes those on without searching them for the delimiter.
        return self._sink.bytes_missing if self._sink is not None else 0

    def receiving_image(self) -> ImageSink | None:
        """The image part being received, if the current part is one."""
        return self._sink

    def end(self) -> None:
        if self._text is not None and self._name:
            self.body.fields[self._name] = self._text.decode("utf-8", "replace")
        self._sink, self._text = None, None


async def _finish_form_directly(reader: MultipartReader, parts: _Parts, direct: BodyInto | None,
                                body: ReceivedBody) -> None:
    """When the image part being received knows its length and what follows it in the body is
    small (the closing boundary, a few fields), let the socket write the pixels into the image's
    memory and the rest into a buffer, which the reader then parses as usual."""
    missing = reader.sized_part_missing()
    sink = parts.receiving_image()
    if direct is None or not missing or sink is None:
        return
    view = sink.unfilled()
    unread = direct.unread
    if view is None or len(view) != missing or unread is None or not 0 < unread - missing <= parts.fields_limit:
        return
    after = bytearray(unread - missing)
    before = direct.direct_bytes
    await direct.read_into(view, memoryview(after))
    sink.wrote(missing)
    # What the socket wrote, less the buffer after the image (bytes held from earlier reads fill
    # the image first, so the buffer came from the socket unless the whole rest had arrived).
    body.direct_bytes += max(0, direct.direct_bytes - before - len(after))
    reader.feed(bytes(after))


async def receive_multipart(stream: AsyncIterator[bytes], boundary: bytes | None, image_limit: int,
                            fields_limit: int, pool: BufferPool, reserve: FieldReserver | None = None,
                            direct: BodyInto | None = None) -> ReceivedBody:
    """Parse a multipart body from ``stream``; images land in worker segments (``reserve``) or
    pooled arrays as they arrive. With ``direct`` (the connection's ``BodyInto``), the socket writes
    a sized image's pixels into that memory itself."""
    if not boundary:
        raise _invalid("multipart body without a boundary")
    body = ReceivedBody()
    parts = _Parts(body, image_limit, fields_limit, pool, reserve)
    reader = MultipartReader(boundary, parts)
    try:
        async for chunk in stream:
            reader.feed(chunk)
            await _finish_form_directly(reader, parts, direct, body)
        reader.finish()
    except MalformedMultipart as exc:
        body.release()
        raise _invalid(f"malformed multipart body: {exc}") from exc
    except BaseException:
        body.release()
        raise
    return body


def parse_shape(raw: str) -> tuple[int, ...]:
    """``H,W`` or ``H,W,C`` from the ``X-Image-Shape`` header."""
    try:
        shape = tuple(int(part) for part in raw.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or any(n <= 0 for n in shape):
        raise _invalid(f"X-Image-Shape {raw!r} is not 'H,W' or 'H,W,C' with positive integers",
                       header="X-Image-Shape")
    return shape


async def _fill_directly(sink: ImageSink, direct: BodyInto | None, body: ReceivedBody) -> None:
    """Let the socket write the rest of the body into the image's memory, if that rest is exactly
    what the image still needs (more or less is an error the streamed path words precisely)."""
    view = sink.unfilled()
    if direct is None or view is None or not len(view) or direct.unread != len(view):
        return
    before = direct.direct_bytes
    await direct.read_into(view)
    sink.wrote(len(view))
    body.direct_bytes += direct.direct_bytes - before


async def receive_raw(stream: AsyncIterator[bytes], content_type: bytes, shape_header: str | None,
                      image_limit: int, pool: BufferPool, reserve: Reserver | None = None,
                      direct: BodyInto | None = None) -> ReceivedBody:
    """The whole body is the image: a ``.npy`` file, or bare pixels of ``shape_header``'s shape.
    With ``direct`` (the connection's ``BodyInto``), the socket writes the pixels into their memory."""
    if content_type in NPY_TYPES:
        sink = ImageSink("image", "request body", image_limit, pool, reserve=reserve)
    elif shape_header is None:
        raise _invalid("a raw application/octet-stream image needs the header X-Image-Shape: H,W or H,W,C "
                       "(uint8 pixels, row-major); or send a .npy file as application/x-npy",
                       header="X-Image-Shape")
    else:
        sink = ImageSink("image", "request body", image_limit, pool, raw_shape=parse_shape(shape_header),
                         reserve=reserve)
    body = ReceivedBody(images={"image": sink})
    try:
        await _fill_directly(sink, direct, body)  # raw pixels: their size is known before any byte
        async for chunk in stream:
            sink.write(chunk)
            await _fill_directly(sink, direct, body)  # a .npy: once its header arrived
    except BaseException:
        body.release()
        raise
    return body
