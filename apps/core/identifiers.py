"""Communication identifiers in the shapes ACS uses (shared/acs-api/README.md section 3.8).

The REST API speaks `CommunicationIdentifierModel` (`rawId` plus one nested object); the
JavaScript signaling events speak `CommunicationIdentifierKind` (`kind` plus flat fields).
"""

from __future__ import annotations

from typing import Any

COMMUNICATION_USER_PREFIXES = ("8:acs:", "8:spool:", "8:dod-acs:", "8:gcch-acs:")


def raw_id_of(model: Any) -> str | None:
    """The raw id a request's CommunicationIdentifierModel names, or None when it names none.

    The SDKs send `rawId` and one nested object; either is enough here.
    """
    if not isinstance(model, dict):
        return None
    raw_id = model.get("rawId")
    if isinstance(raw_id, str) and raw_id:
        return raw_id
    user = model.get("communicationUser")
    if isinstance(user, dict) and isinstance(user.get("id"), str) and user["id"]:
        return str(user["id"])
    phone = model.get("phoneNumber")
    if isinstance(phone, dict) and isinstance(phone.get("value"), str) and phone["value"]:
        return f"4:{phone['value']}"
    return None


def is_communication_user(raw_id: str) -> bool:
    return raw_id.startswith(COMMUNICATION_USER_PREFIXES)


def identifier_model(raw_id: str) -> dict[str, Any]:
    """The REST shape of a raw id (responses always carry `rawId` and `kind`)."""
    if is_communication_user(raw_id):
        return {"rawId": raw_id, "kind": "communicationUser", "communicationUser": {"id": raw_id}}
    if raw_id.startswith("4:"):
        return {"rawId": raw_id, "kind": "phoneNumber", "phoneNumber": {"value": raw_id[2:]}}
    return {"rawId": raw_id, "kind": "unknown"}


def identifier_kind(raw_id: str) -> dict[str, Any]:
    """The JavaScript signaling shape of a raw id (`CommunicationIdentifierKind`)."""
    if is_communication_user(raw_id):
        return {"kind": "communicationUser", "communicationUserId": raw_id}
    if raw_id.startswith("4:"):
        return {"kind": "phoneNumber", "phoneNumber": raw_id[2:], "rawId": raw_id}
    return {"kind": "unknown", "id": raw_id}
