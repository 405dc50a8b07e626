"""The loopback carrier (embedded default): numbers of this deployment reach each other as
inbound SMS; any other number reaches a virtual handset in the console. Delivery is known at
once, so every submission is answered as delivered."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from apps.sms.carriers import CarrierError, Outgoing, Submitted


class Carrier:
    name = "loopback"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def submit(
        self, messages: Sequence[Outgoing]
    ) -> Iterator[tuple[Outgoing, Submitted | CarrierError]]:
        for message in messages:
            try:
                yield message, self._deliver(message)
            except CarrierError as error:
                yield message, error

    def _deliver(self, message: Outgoing) -> Submitted:
        from apps.sms import handsets, services

        if handsets.is_handset(message.recipient):
            handsets.store_incoming(
                sender=message.sender, handset=message.recipient, text=message.text
            )
        elif (
            services.receive_sms(
                sender=message.sender, recipient=message.recipient, text=message.text
            )
            is None
        ):
            raise CarrierError(f"{message.recipient} is not in service.", permanent=True)
        return Submitted(carrier_message_id=f"loopback-{message.message_id}", delivered=True)
