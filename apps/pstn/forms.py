"""The operator's form for a SIP trunk's own settings (console staff page and Django admin):
checked by `services.check_trunk_settings`, so both entry points apply one set of rules."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.pstn import services
from apps.pstn.exceptions import InvalidTrunkSettings
from apps.pstn.models import CallerIdFormat, Codec, SipTrunk, Transport


class TrunkSettingsForm(forms.Form):
    enabled = forms.BooleanField(required=False, help_text="Carries calls (both ways).")
    address = forms.CharField(
        required=False,
        max_length=253,
        help_text="Host name or IP address SIP is sent to; blank: the trunk's FQDN.",
    )
    transport = forms.ChoiceField(choices=Transport.choices)
    digest_username = forms.CharField(required=False, max_length=128)
    digest_password = forms.CharField(
        required=False,
        max_length=128,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: blank keeps the stored password.",
    )
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="CIDR networks calls in may come from, one a line; empty: no calls in.",
    )
    codecs = forms.CharField(
        required=False,
        help_text=f"In order of preference, comma-separated: {', '.join(Codec.values)}.",
    )
    srtp = forms.BooleanField(
        required=False,
        label="SRTP",
        help_text="Encrypt the audio of calls out (SDES keys in the SDP; needs TLS).",
    )
    caller_id_format = forms.ChoiceField(
        required=False,  # blank: E.164
        choices=CallerIdFormat.choices,
        label="Caller id format",
        help_text="How calls out show their caller id in From.",
    )
    assert_identity = forms.BooleanField(
        required=False,
        label="Assert the caller id (P-Asserted-Identity)",
        help_text="For carriers that take the caller id from P-Asserted-Identity.",
    )
    max_concurrent_calls = forms.IntegerField(
        required=False, min_value=1, help_text="Calls at once; empty: no limit."
    )
    outbound_prefixes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="E.164 prefixes outbound calls may dial (e.g. +1), one a line; empty: any.",
    )

    def __init__(self, *args: Any, trunk: SipTrunk | None = None, **kwargs: Any) -> None:
        if trunk is not None and not args and "data" not in kwargs:
            kwargs["initial"] = initial_for(trunk)
        super().__init__(*args, **kwargs)
        self.settings: services.TrunkSettings | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        raw = dict(data)
        password = raw.pop("digest_password", "") or ""
        # Blank keeps the stored password (it is never shown); the box removes it.
        raw["digest_password"] = "" if raw.pop("clear_password", False) else (password or None)
        try:
            self.settings = services.check_trunk_settings(raw)
        except InvalidTrunkSettings as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)
        return data


def initial_for(trunk: SipTrunk) -> dict[str, Any]:
    return {
        "enabled": trunk.enabled,
        "address": trunk.address,
        "transport": trunk.transport,
        "digest_username": trunk.digest_username,
        "allowed_networks": "\n".join(trunk.allowed_networks or []),
        "codecs": ", ".join(trunk.codecs or []),
        "srtp": trunk.srtp,
        "caller_id_format": trunk.caller_id_format,
        "assert_identity": trunk.assert_identity,
        "max_concurrent_calls": trunk.max_concurrent_calls,
        "outbound_prefixes": "\n".join(trunk.outbound_prefixes or []),
    }
