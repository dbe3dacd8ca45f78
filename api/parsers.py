"""The request body parser: DRF's `JSONParser`, with a body nested too deeply for Python's JSON decoder refused as a
400 like any other malformed body.

DRF 3.x turns the decoder's `ValueError` into a `ParseError` (400) but not its `RecursionError` ("maximum recursion
depth exceeded while decoding a JSON array"), which a 2-byte-per-level body of `[[[[...` raises well within the body
size limit: before, a 500. tests/api/test_collections.py sends it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

__all__ = ["JSONParser"]


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
