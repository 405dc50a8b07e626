"""The management API's OpenAPI schema, completed: every operation lists the errors it can
answer, in the ACS error shape, with the limits that produce them (drf-spectacular hook)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "example": "InvalidRequest"},
                "message": {"type": "string"},
                "target": {"type": "string", "description": "the field at fault"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


def _errors() -> dict[str, str]:
    body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return {
        "400": "Bad input, refused before anything is written: invalid JSON, a field that fails "
        "its check (the `target` names it), lone surrogates or NUL in any string, nesting "
        "deeper than 32, integers outside 64 bits.",
        "401": "No or wrong credentials (session or HTTP Basic).",
        "403": "The role on the resource does not allow this, or cached Basic credentials "
        "were sent from another site's page.",
        "404": "No such object, or it belongs to a resource you have no role on.",
        "413": f"The body is over {body} bytes (SPOOL_MAX_BODY_BYTES).",
        "429": "Too many failed sign-ins for this account or address; `Retry-After` says when "
        "to try again (SPOOL_QUOTA_SIGN_IN_*).",
    }


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOK: the error responses of every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in _errors().items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
