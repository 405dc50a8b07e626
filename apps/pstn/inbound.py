"""Who may call in, to which number: the rules of inbound phone calls, checked when the SIP edge
hands a call to Spool (apps/automation/sip_line.py) and before anything rings.

- The call must come from the network of an enabled trunk (an operator's `allowedNetworks`):
  403 otherwise, whatever it claims.
- The number called must be one that a resource owning such a trunk owns (404 otherwise), with
  inbound calling (403), and somewhere to go (its inbound destination; 480 without one).
- The resource's phone calls (SPOOL_PSTN_MAX_CALLS) and the trunk's own limit count inbound
  calls too: 486 Busy Here past them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from apps.numbers.models import Capability, NumberStatus, PhoneNumber
from apps.pstn import services
from apps.pstn.models import SipTrunk

INBOUND = (Capability.INBOUND, Capability.BOTH)


class InboundRefused(Exception):
    """The SIP status (and reason phrase) an inbound call is refused with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Admission:
    """A call that may come in: through `trunk`, to the resource's `number`."""

    trunk: SipTrunk
    number: PhoneNumber


def admit(source: str, number: str) -> Admission:
    """Check a call from `source` (the peer's IP, as the edge saw it) to `number` (E.164).
    Raises InboundRefused."""
    trunks = services.trunks_for_source(source)
    if not trunks:
        raise InboundRefused(403, "Forbidden")
    owned = {
        phone.owner_id: phone
        for phone in PhoneNumber.objects.filter(
            owner__in={trunk.resource_id for trunk in trunks},
            status=NumberStatus.OWNED,
            number=number,
        )
    }
    trunk = next((trunk for trunk in trunks if trunk.resource_id in owned), None)
    if trunk is None:
        raise InboundRefused(404, "Not Found")
    phone = owned[trunk.resource_id]
    if phone.owned_calling not in INBOUND:
        raise InboundRefused(403, "Forbidden")
    if not phone.inbound_destination or phone.inbound_destination.startswith("http"):
        raise InboundRefused(480, "Temporarily Unavailable")
    return Admission(trunk, phone)


def check_capacity(admission: Admission, live_by_trunk: dict[str, int]) -> None:
    """Refuse (486) past the resource's phone calls at once or the trunk's own limit;
    `live_by_trunk`: the resource's phone calls now, by trunk FQDN."""
    limit = admission.trunk.max_concurrent_calls
    if sum(live_by_trunk.values()) >= settings.PSTN_MAX_CALLS or (
        limit is not None and live_by_trunk.get(admission.trunk.fqdn, 0) >= limit
    ):
        raise InboundRefused(486, "Busy Here")
