"""Management commands: create_resource, seed_demo, rotate_signing_key."""

from __future__ import annotations

import base64
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Membership, Resource

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_resource_prints_the_connection_string_last(settings) -> None:
    # when
    output = _run("create_resource", "Payments")

    # then
    last = output.strip().splitlines()[-1]
    endpoint, key = last.split(";")
    port = Resource.objects.get().port
    first, last_port = settings.RESOURCE_PORTS
    assert first <= port <= last_port
    assert endpoint == f"endpoint=https://127.0.0.1:{port}/"
    assert len(base64.b64decode(key.removeprefix("accesskey="))) == 32
    assert Resource.objects.get().primary_key == key.removeprefix("accesskey=")


def test_create_resource_uses_the_public_url(settings) -> None:
    settings.PUBLIC_URL = "https://comms.example.org"
    output = _run("create_resource", "Edge").strip()
    resource = Resource.objects.get()
    assert output.endswith(
        f"endpoint=https://comms.example.org:{resource.port}/;accesskey={resource.primary_key}"
    )


def test_create_resource_under_a_resource_domain(settings) -> None:
    # given: a wildcard DNS name for resources, and no ports
    settings.PUBLIC_URL = "https://console.example.org"
    settings.RESOURCE_DOMAIN = "acs.example.org"
    settings.RESOURCE_PORTS = None

    # when
    output = _run("create_resource", "Edge_Case App")

    # then: the slug is a DNS label, the endpoint a host name of its own
    resource = Resource.objects.get()
    assert resource.slug == "edge-case-app"
    assert resource.port is None
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith("endpoint=https://edge-case-app.acs.example.org/;accesskey=")
    )


def test_create_resource_without_ports_or_domain_keeps_the_path_endpoint(settings) -> None:
    settings.RESOURCE_PORTS = None
    output = _run("create_resource", "Edge")
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith(f"endpoint=https://127.0.0.1:{settings.HTTPS_PORT}/r/edge/;accesskey=")
    )


def test_create_resource_with_owner_and_duplicate_name(owner) -> None:
    _run("create_resource", "Payments", "--owner", "owner")
    assert Membership.objects.get().user == owner
    with pytest.raises(CommandError, match="already exists"):
        _run("create_resource", "payments")
    with pytest.raises(CommandError, match="No user"):
        _run("create_resource", "Other", "--owner", "ghost")
    assert Resource.objects.count() == 1


def test_seed_demo_is_idempotent(settings) -> None:
    first = _run("seed_demo")
    second = _run("seed_demo")
    assert first == second
    assert "admin / " in first and "endpoint=https://" in first
    assert Resource.objects.get().slug == "demo"


def test_rotate_signing_key(settings, tmp_path) -> None:
    settings.SIGNING_KEYS_DIR = tmp_path
    _run("rotate_signing_key")
    output = _run("rotate_signing_key", "--prune")
    assert "2 key(s) published" in output and "Pruned 0" in output
