"""Sign-in throttling, for the console's form and HTTP Basic on the management API alike: failed
attempts are counted per account name and per address (SPOOL_QUOTA_SIGN_IN_ACCOUNT and
_ADDRESS); past either, every attempt is refused before its password is hashed (a guess costs a
PBKDF2 run, so unthrottled guessing was also a way to load the platform), until the window
slides. Names that have no account are counted and refused alike, so the answer never tells
whether an account exists."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from apps.core import quotas


def _keys(username: str, request: Any) -> list[tuple[str, str]]:
    """(quota, key) pairs; `request` is Django's or DRF's (both have META), or None."""
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    return [("sign-in-account", username.strip().lower()), ("sign-in-address", address)]


def check_sign_in_allowed(username: str, request: Any) -> None:
    """Raise QuotaExceeded (429, with Retry-After) while the name or the address is locked."""
    for name, key in _keys(username, request):
        quotas.check(name, key, settings.QUOTAS[name], what="failed sign-ins")


def record_sign_in(username: str, request: Any, *, succeeded: bool) -> None:
    if succeeded:
        # A good password clears the account's failures (not the address's: one address
        # guessing at many accounts stays counted).
        quotas.reset(
            "sign-in-account", _keys(username, request)[0][1], settings.QUOTAS["sign-in-account"]
        )
        return
    for name, key in _keys(username, request):
        try:
            quotas.spend(name, key, settings.QUOTAS[name], what="failed sign-ins")
        except quotas.QuotaExceeded:
            pass  # this failure is answered as a failure; the next attempts are refused


class ThrottledModelBackend(ModelBackend):
    """Django's model backend behind the throttle: every sign-in path goes through it."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None or password is None:
            return None
        try:
            check_sign_in_allowed(username, request)
        except quotas.QuotaExceeded:
            raise PermissionDenied("too many failed sign-ins") from None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        record_sign_in(username, request, succeeded=user is not None)
        return user


class ThrottledAuthenticationForm(AuthenticationForm):
    """The console's sign-in form: says plainly when sign-ins are paused, and for how long."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        try:
            check_sign_in_allowed(username, self.request)
        except quotas.QuotaExceeded as refused:
            minutes = max(1, round(refused.retry_after / 60))
            raise forms.ValidationError(
                f"Too many failed sign-ins for this account or from this address. Try again in "
                f"{minutes} minute{'s' if minutes > 1 else ''}, or reset your password.",
                code="throttled",
            ) from None
        return super().clean()
