"""What the Call Automation service modules share: the application's identity and whether
the media plane is up, checks on request bodies (strings, callback URLs, identities), and a
live connection with its participants.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.automation.exceptions import (
    CallConnectionNotFound,
    InvalidAutomationRequest,
    MediaPlaneUnavailable,
    NotSupported,
    WrongCallState,
)
from apps.automation.models import CallConnection, ConnectionState
from apps.calls.models import CallLegState, CallParticipant
from apps.core.identifiers import is_communication_user, raw_id_of
from apps.core.outbound import check_url

MEDIA_ALIVE_KEY = "automation:media:alive"
MAX_OPERATION_CONTEXT = 2048


# --- Identities and the media plane ---------------------------------------------------------
def application_raw_id(resource: Resource) -> str:
    """Who the application is in its calls (ACS shows the application's own identity)."""
    return f"8:acs:{resource.pk}_callautomation"


def media_available() -> bool:
    """The media process is alive (it refreshes this mark every second)."""
    return bool(cache.get(MEDIA_ALIVE_KEY))


def _require_media() -> None:
    if not media_available():
        raise MediaPlaneUnavailable(
            "The media plane is not running: start Spool with Janus installed "
            "(manage.py serve starts it), or run manage.py media."
        )


# --- Checks on request bodies ----------------------------------------------------------------
def _text(body: dict[str, Any], field: str, *, limit: int, required: bool = False) -> str:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise InvalidAutomationRequest(f"{field} is required.", target=field)
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidAutomationRequest(
            f"{field} must be a string of at most {limit} characters.", target=field
        )
    return value


def _callback_uri(
    body: dict[str, Any], field: str = "callbackUri", *, required: bool = True
) -> str:
    value = _text(body, field, limit=2048, required=required)
    return check_url(value, target=field) if value else ""


def _identity_of(resource: Resource, model: Any, field: str) -> str:
    """The raw id a CommunicationIdentifierModel names, which must be an identity of this
    resource (phone numbers need SIP trunks, which are not set up here yet)."""
    raw_id = raw_id_of(model)
    if raw_id is None:
        raise InvalidAutomationRequest(
            f"{field} must name a communication identifier.", target=field
        )
    if raw_id.startswith("4:"):
        raise NotSupported(
            "Calls to phone numbers need a SIP trunk, which this deployment does not have yet.",
            target=field,
        )
    if not is_communication_user(raw_id):
        raise NotSupported(f"{field}: only communication users can be called here.", target=field)
    return accounts.access_identity(resource, raw_id).raw_id


def _operation_uri(body: dict[str, Any]) -> str:
    return _callback_uri(body, "operationCallbackUri", required=False)


# --- A live connection and its participants ------------------------------------------------
def _live(connection: CallConnection) -> CallConnection:
    if connection.state != ConnectionState.CONNECTED:
        raise WrongCallState(
            f"The call connection is {connection.state}: this needs an established call."
        )
    return connection


def participants(connection: CallConnection) -> list[CallParticipant]:
    return list(connection.call.participants.filter(state=CallLegState.CONNECTED))


def access_participant(connection: CallConnection, raw_id: str) -> CallParticipant:
    leg = connection.call.participants.filter(raw_id=raw_id, state=CallLegState.CONNECTED).first()
    if leg is None:
        raise CallConnectionNotFound(f"Participant {raw_id!r} is not in the call.")
    return leg
