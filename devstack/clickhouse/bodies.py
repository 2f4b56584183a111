"""Request bodies as streams of byte chunks: framing (Content-Length or chunked) and Content-Encoding.

Inserts can be far larger than memory (a 2M-row Native insert is a few hundred MB), so bodies are
never read whole: each layer yields chunks as they arrive and the inserter consumes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP

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


class _Lz4Frames:
    """LZ4 frame decoder that accepts concatenated frames (clickhouse-connect sends one per block)."""

    def __init__(self):
        self._decoder = lz4.frame.LZ4FrameDecompressor()

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._decoder.decompress(data))
            if not self._decoder.eof:
                break
            data = self._decoder.unused_data
            self._decoder = lz4.frame.LZ4FrameDecompressor()
        return b"".join(out)


def _decoder(encoding: str):
    if encoding == "lz4":
        return _Lz4Frames()
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj()
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
