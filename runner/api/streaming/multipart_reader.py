"""A streaming ``multipart/form-data`` reader that moves part bodies at C speed.

The delimiter (``CRLF--boundary``) is found with ``bytes.find`` on each chunk as it arrives, and
the bytes of a part body between delimiters are handed on as ``memoryview`` slices of that chunk,
never copied or visited byte by byte in Python: for a multi-megabyte image the cost per chunk is
one search and one slice. Only the last few bytes of a chunk that could begin a delimiter split
across the chunk border are held back (at most ``len(delimiter) - 1``), and the small things
between parts (the delimiter line, the part headers) are collected in a capped buffer.

Grammar (RFC 2046 section 5.1.1): an optional preamble, ``--boundary``, optional blanks, CRLF, the
part headers up to an empty line, the part body, then ``CRLF--boundary`` again, and so on; the last
delimiter is ``CRLF--boundary--`` and whatever follows it (the epilogue) is ignored. Anything else
raises ``MalformedMultipart``, as does a body that ends before its closing delimiter.
"""

from __future__ import annotations

from typing import Protocol

#: Part headers longer than this (all lines of one part together) are refused: a form field needs
#: one Content-Disposition and perhaps a Content-Type, a few hundred bytes.
MAX_HEADER_BYTES = 16 * 1024
#: More parts than this are refused: an /execute form has about a dozen fields.
MAX_PARTS = 256
#: Blanks allowed after a boundary before its CRLF ("transport padding"), and preamble bytes kept
#: while looking for the first boundary (only a delimiter's length is ever needed).
_MAX_PADDING = 256

_CRLF = b"\r\n"
_BLANKS = b" \t"


class MalformedMultipart(ValueError):
    """The body does not follow the multipart grammar (or passes a structural cap)."""


class PartHandler(Protocol):
    """Where the parts of a body go, in order: ``begin`` (headers), ``data`` (any number), ``end``."""

    def begin(self, headers: dict[bytes, bytes]) -> None:
        """A part starts; header names are lower-cased, values stripped of surrounding blanks."""

    def data(self, view: memoryview) -> None:
        """The next bytes of the current part's body (valid only during the call: copy to keep)."""

    def end(self) -> None:
        """The current part's body is complete."""

    def wanted(self) -> int:
        """Bytes the current part is known to still need (0: not known). Once the part's first
        bytes have told it its length, that many bytes are passed on without looking for the
        delimiter in them, even a delimiter that came in the same chunk as those first bytes: a
        part shorter than it says swallows what follows it, whatever the chunking."""


def parse_part_headers(block: bytes) -> dict[bytes, bytes]:
    """``Name: value`` lines separated by CRLF (no trailing empty line) into a dict."""
    headers: dict[bytes, bytes] = {}
    if not block:
        return headers
    for line in block.split(_CRLF):
        name, colon, value = line.partition(b":")
        name = name.strip(_BLANKS)
        # A bare CR or LF means lines not ended by CRLF: we cannot tell where one header ends.
        if not colon or not name or b"\r" in line or b"\n" in line:
            raise MalformedMultipart(f"part header line {bytes(line[:80])!r} is not 'Name: value' ended by CRLF")
        headers[name.lower()] = value.strip(_BLANKS)
    return headers


# States of the reader.
_PREAMBLE, _AFTER_BOUNDARY, _HEADERS, _BODY, _EPILOGUE = range(5)


class MultipartReader:
    """Feeds a body chunk by chunk (``feed``) to a ``PartHandler``; ``finish`` at the end of the body.

    ``boundary`` is the value of the Content-Type's ``boundary`` parameter (without the dashes).
    Raises ``MalformedMultipart`` from ``feed`` or ``finish``; the handler's own exceptions pass through.
    """

    def __init__(self, boundary: bytes, handler: PartHandler, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_parts: int = MAX_PARTS) -> None:
        if not boundary:
            raise MalformedMultipart("multipart body without a boundary")
        self.handler = handler
        self.max_header_bytes = max_header_bytes
        self.max_parts = max_parts
        self.parts = 0
        self._dash_boundary = b"--" + boundary
        self._delimiter = _CRLF + self._dash_boundary
        self._state = _PREAMBLE
        self._body_start = True  # nothing of the body consumed yet (see ``_preamble``)
        # Bytes not yet consumed in the states before a body: preamble tail, padding, headers.
        self._pending = bytearray()
        # In a body: the end of the previous chunk that could be the start of a split delimiter.
        self._tail = b""
        self._searched = 0  # how far ``_pending`` was already searched for the end of the headers

    # --- feeding ------------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the body, in order."""
        pos, size = 0, len(chunk)
        while pos < size:
            state = self._state
            if state == _BODY:
                pos = self._body(chunk, pos)
            elif state == _EPILOGUE:
                return  # after the closing delimiter: ignored, as RFC 2046 says
            else:
                pos = self._small(chunk, pos)

    def sized_part_missing(self) -> int:
        """Bytes the current part still needs by its own length, when the next bytes of the body
        are exactly those (nothing held back): a reader may deliver them to the part itself, then
        ``feed`` what follows. 0 when that is not the case."""
        if self._state != _BODY or self._tail:
            return 0
        return self.handler.wanted()

    def finish(self) -> None:
        """The body ended: it must have ended after the closing delimiter."""
        if self._state == _BODY and self.handler.wanted() > 0:
            raise MalformedMultipart(f"the body ended inside a part that still needed {self.handler.wanted()} "
                                     "bytes (as its .npy header says) and before the closing boundary; "
                                     "is the file complete?")
        if self._state != _EPILOGUE:
            raise MalformedMultipart("the body ended before its closing boundary; was it cut short?")

    # --- part bodies --------------------------------------------------------------------------------

    def _body(self, chunk: bytes, pos: int) -> int:
        """Part bytes from ``chunk[pos:]``; returns where in ``chunk`` to go on."""
        delimiter = self._delimiter
        tail = self._tail
        wanted = self.handler.wanted()
        if wanted > 0:
            # A part of known length (an .npy whose header is in) takes that many bytes unsearched
            # (held-back bytes first); the delimiter is looked for after them. Searching a part
            # costs about four copies of it: more than writing it into the worker's segment.
            if tail:
                self._tail = tail[wanted:]
                self._emit(memoryview(tail)[:wanted])
                return pos
            end = min(len(chunk), pos + wanted)
            self._emit(memoryview(chunk)[pos:end])
            return end
        if tail:
            # A delimiter may start in the held-back tail and end in this chunk: search the tail
            # plus just enough of the chunk to hold the rest of it (small; copied).
            probe = tail + chunk[pos:pos + len(delimiter) - 1]
            found = probe.find(delimiter)
            if found >= 0:
                self._tail = b""
                self._emit(memoryview(probe)[:found])
                if self.handler.wanted() > 0:
                    # Those bytes told the part its length, which runs past this delimiter: it is
                    # part data (the same reading whatever the chunking; see ``wanted``).
                    if found < len(tail):
                        self._tail = tail[found:]
                        return pos
                    return pos + found - len(tail)
                return self._part_done(pos + found + len(delimiter) - len(tail))
            if len(probe) < len(tail) + len(delimiter) - 1:  # the chunk was too short to settle it
                keep = self._held_back(probe, 0)
                self._tail = probe[keep:]
                self._emit(memoryview(probe)[:keep])
                return len(chunk)
            self._tail = b""
            self._emit(memoryview(tail))  # no delimiter starts in it: plain body bytes
            return pos  # the part may now know its length: start over with the chunk
        found = chunk.find(delimiter, pos)
        if found >= 0:
            self._emit(memoryview(chunk)[pos:found])
            if self.handler.wanted() > 0:
                return found  # the part learnt a length that runs past this delimiter: data (above)
            return self._part_done(found + len(delimiter))
        keep = self._held_back(chunk, pos)
        self._tail = chunk[keep:]
        self._emit(memoryview(chunk)[pos:keep])
        return len(chunk)

    def _held_back(self, data: bytes, start: int) -> int:
        """Where the bytes that could begin a delimiter cut off at the end of ``data`` start."""
        delimiter = self._delimiter
        at = data.find(b"\r", max(start, len(data) - len(delimiter) + 1))
        while at >= 0 and not delimiter.startswith(data[at:]):
            at = data.find(b"\r", at + 1)
        return len(data) if at < 0 else at

    def _emit(self, view: memoryview) -> None:
        if view:
            self.handler.data(view)

    def _part_done(self, pos: int) -> int:
        self.handler.end()
        self._state = _AFTER_BOUNDARY
        return pos

    # --- between bodies -----------------------------------------------------------------------------

    def _small(self, chunk: bytes, pos: int) -> int:
        """Preamble, delimiter line or headers: collect into ``_pending`` (capped), then parse it.
        Returns the position in ``chunk`` just after what was consumed."""
        pending = self._pending
        room = self.max_header_bytes + 4 + _MAX_PADDING + len(self._delimiter) - len(pending)
        taken = chunk[pos:pos + room]
        if not taken:  # cannot happen while the parsers below raise past their caps; never spin
            raise MalformedMultipart(f"part headers longer than {self.max_header_bytes} bytes")
        pending += taken
        used = self._parse_pending()
        if used is None:  # more bytes are needed
            return pos + len(taken)
        left = len(pending) - used
        if left > len(taken):  # not expected (what was pending before needed this chunk); stay correct
            rest = bytes(pending[used:])
            del pending[:]
            self.feed(rest)
            return pos + len(taken)
        del pending[:]
        # The bytes after ``used`` came from this chunk: parse them from the chunk itself.
        return pos + len(taken) - left

    def _parse_pending(self) -> int | None:
        """Consumes from the front of ``_pending``; how many bytes, or None when it needs more."""
        pending = self._pending
        state = self._state
        if state == _PREAMBLE:
            return self._preamble(pending)
        if state == _AFTER_BOUNDARY:
            return self._after_boundary(pending)
        return self._headers(pending)

    def _preamble(self, pending: bytearray) -> int | None:
        dash = self._dash_boundary
        if self._body_start:  # only the very first bytes may be a boundary without CRLF before it
            if pending.startswith(dash):
                self._state = _AFTER_BOUNDARY
                return len(dash)
            if len(pending) < len(dash) and dash.startswith(pending):
                return None
            self._body_start = False
        found = pending.find(self._delimiter)
        if found >= 0:
            self._state = _AFTER_BOUNDARY
            return found + len(self._delimiter)
        # Preamble: dropped, except what could begin the first delimiter.
        keep = max(0, len(pending) - len(self._delimiter) + 1)
        del pending[:keep]
        return None

    def _after_boundary(self, pending: bytearray) -> int | None:
        if len(pending) < 2:
            return None
        if pending.startswith(b"--"):
            self._state = _EPILOGUE
            return 2
        blanks = len(pending) - len(pending.lstrip(_BLANKS))
        rest = pending[blanks:blanks + 2]
        if blanks > _MAX_PADDING:
            raise MalformedMultipart(f"more than {_MAX_PADDING} blanks after a boundary")
        if len(rest) < 2:
            return None
        if rest != _CRLF:
            raise MalformedMultipart(f"a boundary is followed by {bytes(pending[:16])!r}, not CRLF or '--'")
        self.parts += 1
        if self.parts > self.max_parts:
            raise MalformedMultipart(f"more than {self.max_parts} parts")
        self._state, self._searched = _HEADERS, 0
        return blanks + 2

    def _headers(self, pending: bytearray) -> int | None:
        if pending.startswith(_CRLF):  # no headers at all
            block, used = b"", 2
        else:
            end = pending.find(b"\r\n\r\n", max(0, self._searched - 3))
            if end < 0:
                self._searched = len(pending)
                if len(pending) > self.max_header_bytes + 4:
                    self._refuse_oversized()
                return None
            if end > self.max_header_bytes:
                self._refuse_oversized()
            block, used = bytes(pending[:end]), end + 4
        self.handler.begin(parse_part_headers(block))
        self._state = _BODY
        return used

    def _refuse_oversized(self) -> None:
        raise MalformedMultipart(f"part headers longer than {self.max_header_bytes} bytes")


__all__ = ["MAX_HEADER_BYTES", "MAX_PARTS", "MalformedMultipart", "MultipartReader", "PartHandler",
           "parse_part_headers"]
