"""Who may call in, to which number: the rules of inbound phone calls, checked when the SIP edge
hands a call to Spool (apps/automation/sip_line.py) and before anything rings.

- The call must come from the network of an enabled trunk (an operator's `allowedNetworks`):
  403 otherwise, whatever it claims. Or from the loopback carrier (SPOOL_VOICE_CARRIER=loopback:
  the deployment's own numbers and the console's virtual phones calling in; the SIP edge marks
  those, as only Spool's Janus can send them), which reaches every number of the deployment.
- The number called must be one that a resource owning such a trunk owns (404 otherwise), with
  inbound calling (403), and somewhere to go (its inbound destination; 480 without one).
- The resource's phone calls (SPOOL_PSTN_MAX_CALLS) and the trunk's own limit count inbound
  calls too: 486 Busy Here past them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from apps.numbers.models import Capability, NumberStatus, PhoneNumber
from apps.pstn import loopback, services
from apps.pstn.loopback import LOOPBACK
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
    """A call that may come in: through `trunk` (None: the loopback carrier), to `number`,
    one of its owner's."""

    trunk: SipTrunk | None
    number: PhoneNumber

    @property
    def trunk_name(self) -> str:
        return self.trunk.fqdn if self.trunk is not None else LOOPBACK


def admit(source: str, number: str) -> Admission:
    """Check a call from `source` (the peer's IP, as the edge saw it) to `number` (E.164).
    Raises InboundRefused."""
    if source == LOOPBACK and loopback.enabled():
        phone = PhoneNumber.objects.filter(status=NumberStatus.OWNED, number=number).first()
        if phone is None:
            raise InboundRefused(404, "Not Found")
        return _check_number(None, phone)
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
    return _check_number(trunk, owned[trunk.resource_id])


def _check_number(trunk: SipTrunk | None, phone: PhoneNumber) -> Admission:
    if phone.owned_calling not in INBOUND:
        raise InboundRefused(403, "Forbidden")
    if not phone.inbound_destination or phone.inbound_destination.startswith("http"):
        raise InboundRefused(480, "Temporarily Unavailable")
    return Admission(trunk, phone)


def check_capacity(admission: Admission, live_by_trunk: dict[str, int]) -> None:
    """Refuse (486) past the resource's phone calls at once or the trunk's own limit;
    `live_by_trunk`: the resource's phone calls now, by trunk FQDN."""
    limit = admission.trunk.max_concurrent_calls if admission.trunk is not None else None
    if sum(live_by_trunk.values()) >= settings.PSTN_MAX_CALLS or (
        limit is not None and live_by_trunk.get(admission.trunk_name, 0) >= limit
    ):
        raise InboundRefused(486, "Busy Here")
