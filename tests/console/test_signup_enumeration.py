"""Sign-up never tells whether a username or email has an account (security review, issue 15):
the page answers alike, only the mail to the address says which case it was."""

from __future__ import annotations

import re
import time
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts import signup

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase 42"
CONFIRM_LINK = re.compile(r"https?://[^/]+(/signup/confirm/[^/\s]+/)")
RESET_LINK = re.compile(r"https?://[^/]+(/reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def post_sign_up(django_capture_on_commit_callbacks: Any) -> Any:
    """`post_sign_up(username, email)` -> (the POST's answer, the page it leads to, client),
    with the mail sent as it would be after the commit."""

    def post(username: str, email: str, *, address: str = "127.0.0.1") -> tuple[Any, Any, Client]:
        client = Client(REMOTE_ADDR=address)
        form = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post("/signup/", form)
        page = client.get(answer["Location"]) if answer.status_code == 302 else answer
        return answer, page, client

    return post


def _account_rows() -> list[tuple[Any, ...]]:
    return list(
        User.objects.order_by("pk").values_list(
            "pk", "username", "email", "password", "is_active", "last_login"
        )
    )


def _link(pattern: re.Pattern[str], body: str) -> str:
    match = pattern.search(body)
    assert match, body
    return match.group(1)


def test_a_taken_username_a_taken_email_and_a_fresh_pair_get_the_same_answer(
    owner, post_sign_up
) -> None:
    # given an account "owner" <owner@example.com>
    before = _account_rows()
    cases = {
        "taken username": ("owner", "someone-new@example.com"),
        "taken email": ("someone-new", "owner@example.com"),
        "fresh pair": ("fresh", "fresh@example.com"),
    }

    # when an attacker signs up with each
    answers = {case: post_sign_up(*pair) for case, pair in cases.items()}

    # then every answer is the same redirect to the same page, with the same text (bar the
    # address typed, shown back to whoever typed it)
    assert {(a.status_code, a["Location"]) for a, _, _ in answers.values()} == {
        (302, "/signup/sent/")
    }
    pages = {
        (page.status_code, page.content.decode().replace(cases[case][1], "EMAIL"))
        for case, (_, page, _) in answers.items()
    }
    assert len(pages) == 1
    status, text = pages.pop()
    assert status == 200 and "Check your email" in text and "Nothing arrived?" in text

    # and no account was created or changed (the fresh one waits for its link)
    assert _account_rows() == before

    # and each address got one mail telling its owner what happened
    by_address = {message.to[0]: message for message in mail.outbox}
    assert len(mail.outbox) == 3 and len(by_address) == 3

    taken_name = by_address["someone-new@example.com"]
    assert taken_name.subject == "Choose another Spool username"
    assert "the username owner, but that username is taken" in taken_name.body
    assert "/signup/confirm/" not in taken_name.body and "/reset/" not in taken_name.body

    taken_email = by_address["owner@example.com"]
    assert taken_email.subject == "You already have a Spool account"
    assert "Its username is owner." in taken_email.body
    assert "/signup/confirm/" not in taken_email.body
    reset = Client().get(_link(RESET_LINK, taken_email.body))
    assert reset.status_code == 302 and reset["Location"].endswith("/set-password/")

    fresh = by_address["fresh@example.com"]
    assert fresh.subject == "Confirm your Spool account"
    assert "create the Spool account fresh for this email address" in fresh.body
    assert "/reset/" not in fresh.body
    assert CONFIRM_LINK.search(fresh.body)


def test_every_case_does_the_same_work(owner, post_sign_up) -> None:
    # given the three cases (timing must not tell them apart)
    cases = [
        ("owner", "someone-new@example.com"),
        ("someone-new", "owner@example.com"),
        ("fresh", "fresh@example.com"),
    ]
    hashes, queries = [], []

    # when each signs up
    for username, email in cases:
        with (
            mock.patch.object(signup, "make_password", wraps=signup.make_password) as hashing,
            CaptureQueriesContext(connection) as captured,
        ):
            post_sign_up(username, email)
        hashes.append(hashing.call_count)
        queries.append(len(captured.captured_queries))

    # then each hashed the password once, ran as many queries and sent one mail
    assert hashes == [1, 1, 1]
    assert len(set(queries)) == 1, queries
    assert len(mail.outbox) == 3


def test_the_taken_email_is_found_whatever_its_case(owner, post_sign_up) -> None:
    # when someone signs up with the owner's address in capitals
    post_sign_up("someone-new", "OWNER@EXAMPLE.COM")

    # then the mail says it has an account, and none was created
    assert [m.subject for m in mail.outbox] == ["You already have a Spool account"]
    assert not User.objects.filter(username="someone-new").exists()


def test_a_deactivated_account_is_told_to_ask_the_operator(make_user, post_sign_up) -> None:
    # given a deactivated account
    make_user("dora", is_active=False)

    # when its address signs up
    post_sign_up("dora2", "dora@example.com")

    # then its mail has no reset link (a reset would not reactivate it)
    (message,) = mail.outbox
    assert "deactivated" in message.body and "/reset/" not in message.body


def test_the_link_creates_the_account_signs_in_and_works_once(post_sign_up) -> None:
    # given a fresh sign-up and its mailed link
    _, _, client = post_sign_up("fresh", "fresh@example.com")
    link = _link(CONFIRM_LINK, mail.outbox[0].body)

    # when the link is opened, nothing is created yet: the page asks to confirm
    page = client.get(link)
    assert page.status_code == 200 and b"Confirm your Spool account" in page.content
    assert not User.objects.filter(username="fresh").exists()

    # when they confirm
    response = client.post(link, follow=True)

    # then the account exists, active, with their password, and they are signed in
    assert response.redirect_chain[-1][0] == "/resources/"
    assert b"Welcome, fresh" in response.content
    user = User.objects.get(username="fresh")
    assert user.is_active and user.email == "fresh@example.com"
    assert Client().login(username="fresh", password=PASSWORD)

    # when the link is used again, from anywhere
    again = Client()
    opened, posted = again.get(link), again.post(link)

    # then it is refused, and nobody else is created or signed in
    for answer in (opened, posted):
        assert answer.status_code == 409 and b"used already" in answer.content
    assert User.objects.filter(email__iexact="fresh@example.com").count() == 1
    assert again.get("/resources/").status_code == 302


def test_an_expired_link_is_refused(post_sign_up, monkeypatch) -> None:
    # given a fresh sign-up's link, opened after its lifetime
    _, _, client = post_sign_up("fresh", "fresh@example.com")
    link = _link(CONFIRM_LINK, mail.outbox[0].body)
    later = time.time() + settings.PASSWORD_RESET_TIMEOUT + 60
    monkeypatch.setattr(signup, "_now", lambda: later)

    # when it is followed, then it is refused and creates nothing
    for answer in (client.get(link), client.post(link)):
        assert answer.status_code == 410 and b"has expired" in answer.content
    assert not User.objects.filter(username="fresh").exists()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda token: token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"), id="end"
        ),
        pytest.param(
            lambda token: token[:40] + ("x" if token[40] != "x" else "y") + token[41:], id="middle"
        ),
        pytest.param(lambda token: "not-a-link", id="garbage"),
        pytest.param(lambda token: token + "é", id="not-ascii"),
    ],
)
def test_a_tampered_link_is_refused(post_sign_up, tamper) -> None:
    # given a fresh sign-up's link, altered
    _, _, client = post_sign_up("fresh", "fresh@example.com")
    token = _link(CONFIRM_LINK, mail.outbox[0].body).split("/")[-2]
    link = f"/signup/confirm/{tamper(token)}/"

    # when it is followed, then it is refused and creates nothing
    for answer in (client.get(link), client.post(link)):
        assert answer.status_code == 400 and b"not valid" in answer.content
    assert not User.objects.filter(username="fresh").exists()


def test_a_link_made_with_another_secret_is_refused(settings) -> None:
    # given a link for a sign-up made by another Spool (another SECRET_KEY)
    pending = signup.PendingSignUp("mallory", "mallory@example.com", "md5$x$y")
    settings.SECRET_KEY = "another secret entirely, for another deployment"
    token = signup.make_link_token(pending)
    settings.SECRET_KEY = "this deployment's own secret key, not the other one"

    # when it is followed, then it is refused
    assert Client().post(f"/signup/confirm/{token}/").status_code == 400
    assert not User.objects.filter(username="mallory").exists()


def test_a_link_survives_a_secret_key_rotation(settings) -> None:
    # given a link made before SECRET_KEY was rotated (the old one kept as a fallback)
    pending = signup.PendingSignUp("rosa", "rosa@example.com", "md5$x$y")
    old = settings.SECRET_KEY
    token = signup.make_link_token(pending)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a brand new secret key value", [old]

    # then it still works
    assert signup.read_link_token(token) == pending


def test_a_name_taken_since_the_mail_is_refused_to_the_later_link(post_sign_up) -> None:
    # given two people who signed up for the same free name with their own addresses
    post_sign_up("popular", "first@example.com")
    post_sign_up("popular", "second@example.com")
    first, second = (_link(CONFIRM_LINK, message.body) for message in mail.outbox)

    # when the first confirms, then the second's link is refused and says why (it goes to
    # the second address's owner only)
    assert Client().post(first).status_code == 302
    answer = Client().post(second)
    assert answer.status_code == 409 and b"was taken after this link was sent" in answer.content
    assert list(User.objects.values_list("email", flat=True)) == ["first@example.com"]


def test_mails_to_one_address_are_capped_without_a_word_on_the_page(settings, post_sign_up) -> None:
    # given one address allowed 2 sign-up mails an hour
    settings.QUOTAS = {**settings.QUOTAS, "sign-ups": (2, 3600)}

    # when sign-ups for it come from three client addresses (each within its own quota)
    answers = [
        post_sign_up(f"name{n}", "victim@example.com", address=f"10.0.0.{n}") for n in range(3)
    ]

    # then the page answers alike, but only two mails went out
    assert {(a.status_code, a["Location"]) for a, _, _ in answers} == {(302, "/signup/sent/")}
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"email": "not-an-address"}, b"Enter a valid email address."),
        ({"password1": "1234", "password2": "1234"}, b"too short"),
        ({"password2": "a different long phrase"}, b"didn\xe2\x80\x99t match"),
        ({"username": "no spaces please"}, b"Enter a valid username."),
    ],
)
def test_form_errors_tell_only_about_what_was_typed(owner, form, error) -> None:
    # given a sign-up for the owner's name and address with one field wrong
    data = {
        "username": "owner",
        "email": "owner@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }

    # when it is sent
    response = Client().post("/signup/", {**data, **form})

    # then the form says what is wrong with it, nothing about the account, and mails nobody
    assert response.status_code == 200 and error in response.content
    assert b"already" not in response.content and b"taken" not in response.content
    assert len(mail.outbox) == 0


def test_the_sent_page_needs_a_sign_up_first() -> None:
    assert Client().get("/signup/sent/")["Location"] == "/signup/"
