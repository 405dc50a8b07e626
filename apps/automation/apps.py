from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "apps.automation"
    label = "automation"

    def ready(self) -> None:
        # Calls tells of bridged calls through signals; it knows nothing of automation.
        from apps.automation import services
        from apps.calls import signals

        def offered(sender: Any, call: Any, to: str, built_in_ivr: bool, **kwargs: Any) -> None:
            if built_in_ivr:
                services.answer_with_built_in_ivr(call, to)
            else:
                services.offer_incoming_call(call, to)

        def ended(
            sender: Any,
            call: Any,
            leg: Any,
            code: int,
            sub_code: int = 0,
            reason: str = "",
            **kwargs: Any,
        ) -> None:
            services.leg_ended(call, leg, code, sub_code=sub_code, reason=reason)

        def call_ended(sender: Any, call: Any, **kwargs: Any) -> None:
            services.call_ended(call)

        def phone_dialed(
            sender: Any, call: Any, leg: Any, caller_id: str, trunks: list[str], **kwargs: Any
        ) -> None:
            services.dial_phone(call, leg, caller_id, trunks)

        def phone_answered(sender: Any, call: Any, leg: Any, **kwargs: Any) -> None:
            # A phone's media is in the bridge once it answers (the media process joined it).
            services.media_joined(str(call.pk), leg.raw_id)

        def phone_answering(sender: Any, call: Any, raw_id: str, **kwargs: Any) -> None:
            services.answer_phone(call, raw_id)

        signals.call_offered.connect(offered, weak=False)
        signals.phone_answering.connect(phone_answering, weak=False)
        signals.phone_dialed.connect(phone_dialed, weak=False)
        signals.phone_answered.connect(phone_answered, weak=False)
        signals.leg_ended.connect(ended, weak=False)
        signals.call_ended.connect(call_ended, weak=False)
