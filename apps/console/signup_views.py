"""Sign-up pages: the form, "check your email", and the link that creates the account.

The form's answer is the same whether or not the name or the address has an account; only the
mail says which (apps/accounts/signup.py).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, password_validation
from django.contrib.auth.forms import UsernameField
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from apps.accounts import signup as sign_ups
from apps.core import quotas
from apps.core.errors import ApiError

SENT_TO = "signup_sent_to"  # session key: the address the last sign-up was mailed to


class SignUpForm(forms.Form):
    """Checks only what tells nothing about other accounts: the shape of the name and the
    address, and the password's strength. Whether either is taken is told by mail."""

    username = UsernameField(
        max_length=150,
        validators=[User.username_validator],
        help_text=User._meta.get_field("username").help_text,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    email = forms.EmailField(
        max_length=254,
        help_text="We mail you a link to confirm it. Also used to reset your password.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password confirmation",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Enter the same password as before, for verification.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", "The two password fields didn’t match.")
        elif password2:
            # Against the name and address typed here only: never against another account's.
            candidate = User(username=data.get("username", ""), email=data.get("email", ""))
            try:
                password_validation.validate_password(password2, candidate)
            except ValidationError as error:
                self.add_error("password2", error)
        return data


def _site(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("console:resource-list")
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        # A few sign-ups an hour per address: each one mails somebody.
        try:
            quotas.spend(
                "sign-ups",
                request.META.get("REMOTE_ADDR", ""),
                settings.QUOTAS["sign-ups"],
                what="sign-ups from one address",
            )
        except quotas.QuotaExceeded as refused:
            form.add_error(None, refused.message)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        sign_ups.request_sign_up(
            data["username"], data["email"], data["password1"], site=_site(request)
        )
        request.session[SENT_TO] = data["email"]
        return redirect("console:signup-sent")
    return render(request, "registration/signup.html", {"form": form})


def signup_sent(request: HttpRequest) -> HttpResponse:
    email = request.session.get(SENT_TO)
    if not email:
        return redirect("console:signup")
    return render(
        request,
        "registration/signup_sent.html",
        {
            "email": email,
            "lifetime": sign_ups.link_lifetime_text(),
            "mail_to_files": settings.EMAIL_BACKEND.endswith(".filebased.EmailBackend"),
        },
    )


@never_cache
def signup_confirm(request: HttpRequest, token: str) -> HttpResponse:
    # Opening the link only shows what it will create; the button creates it. Mail scanners
    # that open links, and a link followed by mistake, so sign nobody in.
    try:
        if request.method == "POST":
            user = sign_ups.confirm_sign_up(token)
            login(request, user, backend="apps.accounts.signin.ThrottledModelBackend")
            request.session.pop(SENT_TO, None)
            messages.success(
                request, f"Welcome, {user.username}. Create your first resource below."
            )
            return redirect("console:resource-list")
        pending = sign_ups.check_sign_up_link(token)
    except ApiError as error:
        return render(
            request,
            "registration/signup_link_refused.html",
            {"message": error.message, "used": error.code == "SignUpLinkUsed"},
            status=error.status,
        )
    return render(request, "registration/signup_confirm.html", {"pending": pending})
