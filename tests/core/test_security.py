"""Secrets at rest and in transit: file modes of the data dir, the ACS API only over TLS (or
loopback), Secure cookies and a Content-Security-Policy on HTTPS, no cross-site use of cached
Basic credentials, and no OPTIONS 500s."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import services
from tests.conftest import ROOT, AcsClient

pytestmark = pytest.mark.django_db


def test_the_data_dir_is_closed_to_other_users(tmp_path) -> None:
    # given a data dir an older version left readable
    data = tmp_path / "data"
    (data / "mail").mkdir(parents=True)
    (data / "admin-password").write_text("hunter2")
    (data / "mail" / "reset.log").write_text("a reset link")
    for path in (data, data / "mail", data / "admin-password", data / "mail" / "reset.log"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    # when any command starts on it (migrate creates the database, its WAL, a secret key)
    env = {**os.environ, "SPOOL_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "spool.settings"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    # then nothing in it is readable by group or others
    for path in [data, *data.rglob("*")]:
        if path.name == "static" or "static" in path.parts:
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    assert (data / "spool.sqlite3").exists() and (data / "secret_key").exists()


def test_the_acs_api_over_plain_http_is_refused_but_from_loopback(acs: AcsClient) -> None:
    # given a caller on the network over plain HTTP
    acs.client = Client(REMOTE_ADDR="203.0.113.7")

    # when / then refused, and nothing is created
    response = acs.call("POST", "/identities", {})
    assert response.status_code == 403 and response.json()["error"]["code"] == "HttpsRequired"
    assert acs.resource.identities.count() == 0

    # and over TLS it works, as it does over plain HTTP from loopback
    acs.secure = True
    assert acs.call("POST", "/identities", {}).status_code == 201
    acs.client, acs.secure = Client(), False  # 127.0.0.1
    assert acs.call("POST", "/identities", {}).status_code == 201


def test_plain_http_may_be_allowed_by_the_operator(acs: AcsClient, settings) -> None:
    settings.ALLOW_HTTP_API = True
    acs.client = Client(REMOTE_ADDR="203.0.113.7")
    assert acs.call("POST", "/identities", {}).status_code == 201


def test_console_cookies_are_secure_and_pages_carry_a_csp_over_https(make_user) -> None:
    make_user("dana")
    client = Client()
    page = client.post(
        "/login/", {"username": "dana", "password": "correct horse battery"}, secure=True
    )
    assert page.status_code == 302
    assert page.cookies["sessionid"]["secure"] is True
    listing = client.get("/resources/", secure=True)
    assert "script-src 'self'" in listing["Content-Security-Policy"]
    assert b"onchange=" not in client.get("/resources/", secure=True).content


def test_cached_basic_credentials_do_not_work_from_another_sites_page(owner, resource) -> None:
    # given an identity and a browser that has the owner's Basic credentials cached
    identity, _ = services.create_identity(resource, scopes=["chat"])
    generation = identity.token_generation
    token = base64.b64encode(b"owner:correct horse battery").decode()
    api = APIClient()
    url = f"/api/v1/resources/{resource.slug}/identities/{identity.raw_id}/revoke/"

    # when another site's page posts a form to the management API
    forged = api.post(
        url,
        "{}",
        content_type="text/plain",
        HTTP_AUTHORIZATION=f"Basic {token}",
        HTTP_ORIGIN="https://evil.example",
        HTTP_SEC_FETCH_SITE="cross-site",
    )

    # then it is refused and nothing changes
    assert forged.status_code == 403
    identity.refresh_from_db()
    assert identity.token_generation == generation

    # and a script (no Origin, no Sec-Fetch-Site) still may
    assert api.post(url, HTTP_AUTHORIZATION=f"Basic {token}").status_code in (200, 204)
