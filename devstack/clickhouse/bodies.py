"""Request bodies as streams of byte chunks: framing (Content-Length or chunked) and Content-Encoding.

Inserts can be far larger than memory (a 2M-row Native insert is a few hundred MB), so bodies are
never read whole: each layer yields chunks as they arrive and the inserter consumes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import lz4.frame
import zstandard

from devstack.clickhouse.errors import ClickHouseError

READ_SIZE = 1 << 20


def framed_body(rfile, headers) -> Iterator[bytes]:
    """The raw body bytes of one request, honouring Content-Length or chunked transfer coding."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        yield from _chunked(rfile)
        return
    remaining = int(headers.get("Content-Length") or 0)
    while remaining > 0:
        chunk = rfile.read(min(remaining, READ_SIZE))
        if not chunk:
            raise ClickHouseError(210, "Connection closed before the request body was complete")
        remaining -= len(chunk)
        yield chunk


def _chunked(rfile) -> Iterator[bytes]:
    while True:
        size_line = rfile.readline(1024)
        if not size_line:
            raise ClickHouseError(210, "Connection closed inside a chunked request body")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers: nothing in them matters here
            return
        remaining = size
        while remaining > 0:
            chunk = rfile.read(min(remaining, READ_SIZE))
            if not chunk:
                raise ClickHouseError(210, "Connection closed inside a chunked request body")
            remaining -= len(chunk)
            yield chunk
        rfile.readline(16)  # the CRLF closing the chunk


class _ConcatenatedFrames:
    """Decodes a stream of concatenated frames (zstd, LZ4) or members (gzip, zlib), as ClickHouse does.

    Each of these decoders stops at the end of its first frame: zstandard then refuses more input
    ("cannot use a decompressobj multiple times"), zlib silently drops every later gzip member. Clients
    write one frame per block (clickhouse-connect: zstd and LZ4) or concatenate gzip writes, so each
    frame gets a fresh decoder, fed what its predecessor left over (``unused_data``).
    """

    def __init__(self, new_frame_decoder: Callable[[], Any]):
        self._new_frame_decoder = new_frame_decoder
        self._decoder = new_frame_decoder()
        self._inside_frame = False  # bytes of a frame not yet complete were fed: the stream must go on

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._decoder.decompress(data))
            self._inside_frame = not self._decoder.eof
            if self._inside_frame:
                break
            data = self._decoder.unused_data
            self._decoder = self._new_frame_decoder()
        return b"".join(out)

    def finish(self) -> None:
        """Refuses a body that ends inside a frame: the decoders return what they have, silently."""
        if self._inside_frame:
            raise ValueError("the compressed stream ends inside a frame (truncated body?)")


_FRAME_DECODERS: dict[str, Callable[[], Any]] = {
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
    "gzip": lambda: zlib.decompressobj(zlib.MAX_WBITS | 16),
    "x-gzip": lambda: zlib.decompressobj(zlib.MAX_WBITS | 16),
    "deflate": zlib.decompressobj,
}


def _decoder(encoding: str) -> _ConcatenatedFrames:
    if encoding in _FRAME_DECODERS:
        return _ConcatenatedFrames(_FRAME_DECODERS[encoding])
    if encoding == "br":
        raise ClickHouseError(48, "Brotli request bodies are not supported by the local server")
    raise ClickHouseError(89, f"Unknown compression method: {encoding}")


def decoded_body(chunks: Iterator[bytes], content_encoding: str | None) -> Iterator[bytes]:
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity", "none"):
        yield from chunks
        return
    decoder = _decoder(encoding)
    try:
        for chunk in chunks:
            data = decoder.decompress(chunk)
            if data:
                yield data
        decoder.finish()
    except ClickHouseError:
        raise
    except Exception as error:  # lz4/zstd/zlib each raise their own types for corrupt input
        raise ClickHouseError(271, f"Cannot decompress {encoding} request body: {error}") from error


def form_fields(chunks: Iterator[bytes], content_type: str) -> dict[str, str]:
    """The text fields of a multipart/form-data body (query and param_* fields from clickhouse-connect).

    File parts would be external tables, which this server does not implement.
    """
    body = b"".join(chunks)
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            raise ClickHouseError(48, "External tables (file parts of multipart requests) are not supported")
        if name:
            fields[name] = part.get_payload(decode=True).decode()
    return fields
