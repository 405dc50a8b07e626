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
