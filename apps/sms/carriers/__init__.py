"""SMS carriers: where outgoing messages go and incoming ones come from. One small interface.

- `loopback` (embedded default): numbers of this deployment reach each other as inbound SMS;
  any other number reaches a virtual handset in the console.
- `smpp`: an SMSC over SMPP 3.4 (one transceiver bind per worker process).

A carrier hands what it receives (messages to our numbers, delivery receipts) to
`apps.sms.services.receive_sms` and `apps.sms.services.record_delivery_reports`.
SPOOL_SMS_CARRIER names the module here, or a dotted path to one elsewhere.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings


class CarrierError(Exception):
    """A carrier refused or failed. `permanent` failures fail the message; others retry."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Outgoing:
    """One message to submit. `message_id` is Spool's id (unique, stable across retries)."""

    message_id: str
    sender: str  # E.164, a number the resource owns
    recipient: str  # E.164
    text: str


@dataclass(frozen=True)
class Submitted:
    """The carrier took a message. `delivered` is True when the carrier knows at once that it
    reached the handset (loopback); otherwise a delivery receipt follows later, through
    `record_delivery_reports`."""

    carrier_message_id: str
    delivered: bool = False


class SmsCarrier(Protocol):
    name: str

    def start(self) -> None:
        """Get ready to receive (bind, start listening); called once per worker process.
        Must not raise when the peer is down: reconnect in the background instead."""

    def stop(self) -> None: ...

    def submit(
        self, chunks: Iterable[Sequence[Outgoing]]
    ) -> Iterator[tuple[Outgoing, Submitted | CarrierError]]:
        """Submit messages, yielding each one's answer as soon as it is known (a carrier may
        pipeline several). The carrier takes the next chunk when it is ready for more (the
        caller marks a chunk as handed over when it is taken), and yields every message of
        every chunk exactly once. The caller records the answers as they come, so a crash
        loses at most the answers in flight."""
        ...


_carrier: SmsCarrier | None = None
_lock = threading.Lock()


def get() -> SmsCarrier:
    """This process's carrier (one instance: an SMPP bind is per process)."""
    global _carrier
    with _lock:
        if _carrier is None:
            name = settings.SMS_CARRIER
            module = importlib.import_module(name if "." in name else f"apps.sms.carriers.{name}")
            _carrier = module.Carrier()
        return _carrier


def reset() -> None:
    """Forget the carrier (tests switch carriers; settings may have changed)."""
    global _carrier
    with _lock:
        if _carrier is not None:
            _carrier.stop()
        _carrier = None
