"""Request body parsers for every API (kept apart from the views: DRF settings import them)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class AcsJSONParser(JSONParser):
    """JSON bodies; nesting too deep for Python's parser is bad JSON, not a server error."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


class MergePatchJSONParser(AcsJSONParser):
    media_type = "application/merge-patch+json"
