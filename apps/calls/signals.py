"""Signals the calls app sends about calls whose media goes through the media process
(topology `bridge`), for apps/automation (STYLE.md: a lower app never imports a higher one).
Each is sent inside the transaction that made the change."""

from __future__ import annotations

from django.dispatch import Signal

# A caller rang an identity whose incoming calls go to the application: `call`, `to` (raw id).
call_offered = Signal()
# A leg of a bridged call stopped ringing unanswered or left: `call`, `leg`, `code`.
leg_ended = Signal()
# A bridged call ended for everyone: `call`.
call_ended = Signal()
# A client called a phone number: `call`, `leg` (the phone's, ringing), `caller_id` (E.164)
# and `trunks` (FQDNs, in the route's order) for the media process to place it.
phone_dialed = Signal()
# A call from a phone (apps/calls/incoming_phones.py) was answered: `call`, `raw_id` (the
# phone's) for the media process to accept the phone's INVITE.
phone_answering = Signal()
# A phone leg of a bridged call answered (apps/calls/phones.py): `call`, `leg` (connected).
phone_answered = Signal()
