"""Reading an upstream body within its size limit, decoding its content coding as it arrives.

The limit (`UPSTREAM_<NAME>_MAX_BODY_BYTES`) bounds the *decoded* body, and it is checked as the decoded bytes are
produced: zlib's `decompressobj(...).decompress(data, max_length)` inflates at most `STEP` bytes per call, so a
decompression bomb (1,827 bytes on the wire, 1 GiB of zeros once decoded) costs at most the limit plus one step of
memory and is refused a few milliseconds in. The loop gets a turn every `YIELD_EVERY` decoded bytes of one chunk.

Only what our requests ask for (`Accept-Encoding: gzip, deflate`) is accepted, in one layer: `identity`, `gzip`
(`x-gzip`) or `deflate` (zlib-wrapped, or raw as some servers send it). Stacked codings (`gzip, gzip`) and unknown
ones are refused as a bad response before a byte of the body is read: nothing an upstream we call needs, and the
way bombs are built.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterable, Iterator

from .errors import UpstreamBadResponse, UpstreamBodyTooLarge

__all__ = ["STEP", "Decoder", "decoder_for", "read_body"]

STEP = 64 * 1024  # the most one decompress call may produce
YIELD_EVERY = 1024 * 1024  # decoded bytes of one chunk between turns given to the event loop

_GZIP = zlib.MAX_WBITS | 16
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}

UNSUPPORTED_CODING = "The upstream response uses a content coding that is not supported."
STACKED_CODINGS = "The upstream response uses more than one content coding."
UNDECODABLE = "The upstream response body could not be decoded."


class _Undecodable(Exception):
    """The compressed stream is corrupt."""


class Decoder:
    """One layer of gzip or deflate, decoded in steps of at most `STEP` bytes of output."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._inflate = zlib.decompressobj(wbits)
        self._started = False

    def steps(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes for `data` (and anything zlib still holds), at most `STEP` at a time."""
        try:
            piece = self._first(data) if not self._started else self._inflate.decompress(data, STEP)
            while True:
                if piece:
                    yield piece
                # A full step may leave output inside zlib even when all the input was taken: ask until it is dry.
                if not self._inflate.unconsumed_tail and len(piece) < STEP:
                    return
                piece = self._inflate.decompress(self._inflate.unconsumed_tail, STEP)
        except zlib.error as exc:
            raise _Undecodable from exc

    def _first(self, data: bytes) -> bytes:
        self._started = True
        try:
            return self._inflate.decompress(data, STEP)
        except zlib.error:
            if self._wbits != _ZLIB:
                raise
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate (httpx accepts both too).
            self._inflate = zlib.decompressobj(_RAW_DEFLATE)
            return self._inflate.decompress(data, STEP)

    @property
    def complete(self) -> bool:
        """Did the compressed stream end properly (its trailer seen)?"""
        return self._inflate.eof


def decoder_for(content_encoding: str | None, upstream: str) -> Decoder | None:
    """The decoder for a response's Content-Encoding (None for identity); refuses stacked and unknown codings."""
    if content_encoding is None:
        return None
    codings = [c for c in (part.strip().lower() for part in content_encoding.split(",")) if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1:
        raise UpstreamBadResponse(upstream, STACKED_CODINGS)
    wbits = _WBITS.get(codings[0])
    if wbits is None:
        raise UpstreamBadResponse(upstream, UNSUPPORTED_CODING)
    return Decoder(wbits)


async def read_body(chunks: AsyncIterable[bytes], decoder: Decoder | None, *, limit: int, upstream: str) -> bytes:
    """The whole decoded body, refused (`UpstreamBodyTooLarge`) as soon as either the bytes received or the bytes
    decoded pass `limit`."""
    body = bytearray()
    if decoder is None:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise UpstreamBodyTooLarge(upstream, limit)
        return bytes(body)
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise UpstreamBodyTooLarge(upstream, limit)
        since_yield = 0
        try:
            for piece in decoder.steps(chunk):
                body += piece
                if len(body) > limit:
                    raise UpstreamBodyTooLarge(upstream, limit)
                since_yield += len(piece)
                if since_yield >= YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)
        except _Undecodable:
            raise UpstreamBadResponse(upstream, UNDECODABLE) from None
    if not decoder.complete:
        raise UpstreamBadResponse(upstream, UNDECODABLE)
    return bytes(body)
