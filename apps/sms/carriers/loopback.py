"""The loopback carrier (embedded default): numbers of this deployment reach each other as
inbound SMS; any other number reaches a virtual handset in the console. Delivery is known at
once, so every submission is answered as delivered."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from apps.sms.carriers import CarrierError, Outgoing, Submitted


class Carrier:
    name = "loopback"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def submit(
        self, chunks: Iterable[Sequence[Outgoing]]
    ) -> Iterator[tuple[Outgoing, Submitted | CarrierError]]:
        for chunk in chunks:
            yield from self._submit_chunk(chunk)

    def _submit_chunk(
        self, messages: Sequence[Outgoing]
    ) -> Iterator[tuple[Outgoing, Submitted | CarrierError]]:
        from apps.sms import handsets, services

        # Handsets first, in one insert: under load most traffic leaves the deployment.
        outside = handsets.handsets_among(message.recipient for message in messages)
        to_handsets = [message for message in messages if message.recipient in outside]
        if to_handsets:
            stored = handsets.store_incoming([(m.sender, m.recipient, m.text) for m in to_handsets])
            for message, ok in zip(to_handsets, stored, strict=True):
                yield message, _delivered(message) if ok else _not_ours(message)
        for message in messages:
            if message.recipient in outside:
                continue
            if services.receive_sms(
                sender=message.sender, recipient=message.recipient, text=message.text
            ):
                yield message, _delivered(message)
            else:
                yield (
                    message,
                    CarrierError(f"{message.recipient} is not in service.", permanent=True),
                )


def _delivered(message: Outgoing) -> Submitted:
    return Submitted(carrier_message_id=f"loopback-{message.message_id}", delivered=True)


def _not_ours(message: Outgoing) -> CarrierError:
    return CarrierError(
        f"{message.sender} is no longer a number of this deployment.", permanent=True
    )
