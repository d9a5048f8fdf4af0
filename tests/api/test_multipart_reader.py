"""MultipartReader finds every part whatever the chunking (a delimiter split at any byte), ignores
preamble and epilogue, keeps delimiter-like bytes that are not a delimiter, passes part bytes on as
views of the received chunk, and refuses bodies that break the grammar or its caps."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from runner.api.streaming.multipart_reader import MalformedMultipart, MultipartReader, parse_part_headers

BOUNDARY = b"pvBound42"
DELIMITER = b"\r\n--" + BOUNDARY
#: ``Collector.sizes`` value: the part's first 4 bytes are its total length in decimal.
SIZE_IN_DATA = -1


@dataclass
class Part:
    headers: dict[bytes, bytes]
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False


@dataclass
class Collector:
    """A PartHandler that keeps everything; ``sizes`` names parts of known length (as .npy images are)."""

    parts: list[Part] = field(default_factory=list)
    sizes: dict[bytes, int] = field(default_factory=dict)
    views: list[memoryview] = field(default_factory=list)

    def begin(self, headers: dict[bytes, bytes]) -> None:
        self.parts.append(Part(headers))

    def data(self, view: memoryview) -> None:
        assert isinstance(view, memoryview)
        self.views.append(view)
        self.parts[-1].data += view

    def end(self) -> None:
        self.parts[-1].ended = True

    def wanted(self) -> int:
        if not self.parts or self.parts[-1].ended:
            return 0
        part = self.parts[-1]
        size = self.sizes.get(part.headers.get(b"x-size", b""), 0)
        if size == SIZE_IN_DATA:  # like an .npy header: the first bytes tell the length
            size = int(part.data[:4]) if len(part.data) >= 4 else 0
        return max(0, size - len(part.data))

    def named(self) -> list[tuple[bytes, bytes]]:
        return [(p.headers.get(b"content-disposition", b""), bytes(p.data)) for p in self.parts]


def _form(parts: list[tuple[str, bytes]], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    body = preamble + (b"\r\n" if preamble else b"")
    for index, (name, data) in enumerate(parts):
        body += (b"\r\n" if index else b"") + b"--" + BOUNDARY + b"\r\n"
        body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + data
    return body + DELIMITER + b"--\r\n" + epilogue


def _want(parts: list[tuple[str, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(f'form-data; name="{name}"'.encode(), data) for name, data in parts]


def _read(chunks: list[bytes], handler: Collector | None = None) -> Collector:
    handler = handler or Collector()
    reader = MultipartReader(BOUNDARY, handler)
    for chunk in chunks:
        reader.feed(chunk)
    reader.finish()
    assert all(part.ended for part in handler.parts)
    return handler


PARTS = [("pid", b"P001"), ("image", bytes(range(256)) * 3), ("note", b"")]


def test_the_delimiter_split_at_every_position_is_found() -> None:
    body = _form(PARTS)
    for cut in range(1, len(body)):
        assert _read([body[:cut], body[cut:]]).named() == _want(PARTS), cut


def test_a_body_fed_one_byte_at_a_time_reads_the_same() -> None:
    body = _form(PARTS)
    assert _read([body[i:i + 1] for i in range(len(body))]).named() == _want(PARTS)


def _plain(value: bytes) -> bool:
    """True when ``value`` can be a part's data: no delimiter in it, none made by what follows it."""
    return (value + DELIMITER).find(DELIMITER) == len(value)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([b"\r", b"\n", b"-", b"--", b"pvBound4", b"x", DELIMITER[:-1]]), max_size=12),
       cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=6))
def test_any_chunking_of_delimiter_like_data_gives_the_parts_back(data: list[bytes], cuts: list[int]) -> None:
    value = b"".join(data)
    assume(_plain(value) and _plain(value[::-1]))
    parts = [("a", value), ("b", value[::-1])]
    body = _form(parts)
    points = sorted({cut for cut in cuts if cut < len(body)})
    chunks = [body[start:end] for start, end in zip([0, *points], [*points, len(body)], strict=True)]
    assert _read(chunks).named() == _want(parts)


@pytest.mark.parametrize("lookalike", [b"\r\n--pvBound4", b"\r\n--pvBound4\r\n--pvBoun", b"--pvBound42", b"\r\n-",
                                       b"\r\r\n--pvBound4X"])
def test_part_data_with_a_delimiter_prefix_stays_data(lookalike: bytes) -> None:
    parts = [("image", b"head" + lookalike + b"tail"), ("end", lookalike)]
    body = _form(parts)
    for cut in range(1, len(body)):
        assert _read([body[:cut], body[cut:]]).named() == _want(parts), cut


def test_preamble_and_epilogue_are_ignored() -> None:
    preamble = b"This is a preamble.\r\n--pvBound4 is not the boundary" + b"x" * 70_000
    body = _form(PARTS, preamble=preamble, epilogue=b"\r\nepilogue --pvBound42\r\n junk")
    assert _read([body]).named() == _want(PARTS)
    assert _read([body[i:i + 999] for i in range(0, len(body), 999)]).named() == _want(PARTS)


def test_a_boundary_inside_the_preamble_without_crlf_before_it_is_preamble() -> None:
    body = b"preamble--" + BOUNDARY + b"\r\n\r\nnot a part" + _form(PARTS, preamble=b"\r\n")[2:]
    for cut in range(1, 40):
        assert _read([body[:cut], body[cut:]]).named() == _want(PARTS), cut


def test_an_empty_form_is_a_closing_delimiter_alone() -> None:
    assert _read([b"--" + BOUNDARY + b"--\r\n"]).parts == []


def test_blanks_after_a_boundary_are_transport_padding() -> None:
    body = b"--" + BOUNDARY + b" \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1" + DELIMITER + b"--"
    assert _read([body]).named() == _want([("a", b"1")])


def test_large_part_bytes_are_views_of_the_received_chunk() -> None:
    payload = b"\x07" * 200_000
    body = _form([("image", payload)])
    chunk = body[:150_000]
    handler = _read([chunk, body[150_000:]])
    assert handler.named() == _want([("image", payload)])
    big = [view for view in handler.views if len(view) > 100_000]
    assert big and all(view.obj is chunk for view in big)  # no copy on the way to the handler


def test_a_part_of_known_length_is_passed_on_unsearched_then_ended_by_the_delimiter() -> None:
    payload = b"a" + DELIMITER + b"b" * 50  # holds the delimiter: only a size can keep it whole
    head = b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"image\"\r\nX-Size: n\r\n\r\n"
    second = b"\r\nContent-Disposition: form-data; name=\"pid\"\r\n\r\nP1"
    body = head + payload + DELIMITER + second + DELIMITER + b"--"
    for cut in range(1, len(body)):
        handler = _read([body[:cut], body[cut:]], Collector(sizes={b"n": len(payload)}))
        assert [data for _, data in handler.named()] == [payload, b"P1"], cut


def test_a_body_that_ends_inside_a_part_of_known_length_names_the_missing_bytes() -> None:
    head = b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"image\"\r\nX-Size: n\r\n\r\n"
    reader = MultipartReader(BOUNDARY, Collector(sizes={b"n": 1000}))
    reader.feed(head + b"x" * 100 + DELIMITER + b"--\r\n")
    missing = 1000 - 100 - len(DELIMITER) - 4  # the closing delimiter was taken as part bytes
    with pytest.raises(MalformedMultipart, match=f"still needed {missing} bytes"):
        reader.finish()


def _sized_in_data(payload: bytes) -> bytes:
    head = b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"image\"\r\nX-Size: d\r\n\r\n"
    return head + payload + DELIMITER + b"--\r\n"


def test_a_part_that_learns_its_length_from_its_first_bytes_is_read_alike_whatever_the_chunking() -> None:
    payload = b"0100" + DELIMITER + b"z" * (100 - 4 - len(DELIMITER))
    body = _sized_in_data(payload)
    for cut in range(1, len(body)):
        handler = _read([body[:cut], body[cut:]], Collector(sizes={b"d": SIZE_IN_DATA}))
        assert [data for _, data in handler.named()] == [payload], cut


def test_a_part_shorter_than_its_first_bytes_say_is_refused_alike_whatever_the_chunking() -> None:
    body = _sized_in_data(b"0100" + b"z" * 40)
    missing = 100 - 44 - len(DELIMITER) - 4  # the closing delimiter was taken as part bytes
    for cut in range(1, len(body)):
        reader = MultipartReader(BOUNDARY, Collector(sizes={b"d": SIZE_IN_DATA}))
        reader.feed(body[:cut])
        reader.feed(body[cut:])
        with pytest.raises(MalformedMultipart, match=f"still needed {missing} bytes"):
            reader.finish()


def test_every_body_cut_before_its_closing_delimiter_is_refused() -> None:
    body = _form(PARTS)
    closing = body.rindex(DELIMITER + b"--") + len(DELIMITER) + 2
    for end in range(closing):
        reader = MultipartReader(BOUNDARY, Collector())
        reader.feed(body[:end])
        with pytest.raises(MalformedMultipart):
            reader.finish()
    reader = MultipartReader(BOUNDARY, Collector())
    reader.feed(body[:closing])
    reader.finish()  # the CRLF after the closing delimiter is epilogue: optional


def test_part_headers_over_the_cap_are_refused_while_streaming() -> None:
    reader = MultipartReader(BOUNDARY, Collector(), max_header_bytes=1024)
    reader.feed(b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"a\"\r\n")
    with pytest.raises(MalformedMultipart, match="part headers longer than 1024 bytes"):
        for _ in range(100):  # never ends its headers: refused once past the cap, not at the end
            reader.feed(b"X-Filler: " + b"f" * 90 + b"\r\n")


def test_part_headers_at_the_cap_are_read() -> None:
    line = b"Content-Disposition: form-data; name=\"a\""
    filler = b"X-F: " + b"f" * (200 - len(line) - 2 - 5)
    body = b"--" + BOUNDARY + b"\r\n" + line + b"\r\n" + filler + b"\r\n\r\n1" + DELIMITER + b"--"
    handler = Collector()
    reader = MultipartReader(BOUNDARY, handler, max_header_bytes=200)
    reader.feed(body)
    reader.finish()
    assert handler.named() == _want([("a", b"1")])


def test_more_parts_than_the_cap_are_refused() -> None:
    parts = [(f"f{i}", b"v") for i in range(11)]
    with pytest.raises(MalformedMultipart, match="more than 10 parts"):
        reader = MultipartReader(BOUNDARY, Collector(), max_parts=10)
        reader.feed(_form(parts))
    reader = MultipartReader(BOUNDARY, Collector(), max_parts=11)
    reader.feed(_form(parts))
    reader.finish()


@pytest.mark.parametrize("body", [
    b"--pvBound42\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--pvBound42--",     # LF after boundary
    b"--pvBound42\r\nContent-Disposition: form-data; name=\"a\"\n\n1\r\n--pvBound42--",     # LF-only header end
    b"--pvBound42\r\nContent-Disposition: form-data; name=\"a\"\nX-B: 1\r\n\r\n1\r\n--pvBound42--",  # bare LF
    b"--pvBound42\r\nContent-Disposition: form-data; name=\"a\"\rX-B: 1\r\n\r\n1\r\n--pvBound42--",  # bare CR
    b"--pvBound42\r\nno colon here\r\n\r\n1\r\n--pvBound42--",
    b"--pvBound42X\r\n\r\n1\r\n--pvBound42--",                                               # longer boundary
])
def test_header_lines_not_ended_by_crlf_or_not_name_value_are_refused(body: bytes) -> None:
    reader = MultipartReader(BOUNDARY, Collector())
    with pytest.raises(MalformedMultipart):
        reader.feed(body)
        reader.finish()


def test_header_names_are_case_folded_and_values_trimmed() -> None:
    assert parse_part_headers(b"Content-TYPE :  image/png \r\nX-A:b") == {b"content-type": b"image/png", b"x-a": b"b"}
    assert parse_part_headers(b"") == {}


def test_a_part_without_headers_is_read() -> None:
    body = b"--" + BOUNDARY + b"\r\n\r\nraw" + DELIMITER + b"--"
    handler = _read([body])
    assert [(p.headers, bytes(p.data)) for p in handler.parts] == [({}, b"raw")]


def test_an_empty_boundary_is_refused() -> None:
    with pytest.raises(MalformedMultipart):
        MultipartReader(b"", Collector())
