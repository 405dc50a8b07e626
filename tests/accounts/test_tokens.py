"""Token signing keys: JWKS, rotation without invalidation, pruning, refusal of bad tokens."""

from __future__ import annotations

import time
from contextlib import contextmanager
from unittest.mock import patch

import jwt
import pytest
from django.test import Client

from apps.accounts import services, tokens
from apps.accounts.exceptions import TokenRefused

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_keys(tmp_path, settings) -> None:
    settings.SIGNING_KEYS_DIR = tmp_path / "keys"


@contextmanager
def time_machine(seconds: float):
    """Move time.time forward for the key store (and PyJWT's expiry check)."""
    real = time.time
    with patch("time.time", lambda: real() + seconds):
        yield


def _token(resource, scopes=("chat",)) -> str:
    identity, token = services.create_identity(resource, scopes=list(scopes))
    assert token is not None
    return token.token


def test_jwks_publishes_the_key_that_verifies_tokens(resource) -> None:
    # given
    token = _token(resource)

    # when
    response = Client().get("/.well-known/jwks.json")

    # then another service can verify the token with the published key alone
    assert response.status_code == 200
    jwk_set = jwt.PyJWKSet.from_dict(response.json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwk_set.keys if k.key_id == kid)
    claims = jwt.decode(token, key.key, algorithms=["ES256"])
    assert claims["sub"].startswith(f"8:acs:{resource.id}_")


def test_rotation_keeps_unexpired_tokens_valid_and_signs_with_the_new_key(resource) -> None:
    # given a token signed before rotation
    old_token = _token(resource)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    # when
    new_key = tokens.key_store().rotate()

    # then both keys are published at once, the old one signs until the new one's activation
    assert {k["kid"] for k in Client().get("/.well-known/jwks.json").json()["keys"]} == {
        old_kid,
        new_key.kid,
    }
    assert jwt.get_unverified_header(_token(resource))["kid"] == old_kid
    with time_machine(tokens.KEY_ACTIVATION_SECONDS + 1):
        new_token = _token(resource)
        assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid != old_kid
        assert services.authenticate_token(old_token)


def test_an_immediate_rotation_signs_with_the_new_key_at_once(resource) -> None:
    old_kid = jwt.get_unverified_header(_token(resource))["kid"]
    new_key = tokens.key_store().rotate(immediately=True)
    assert jwt.get_unverified_header(_token(resource))["kid"] == new_key.kid != old_kid


def test_prune_drops_only_keys_no_token_can_still_use(resource) -> None:
    # given an old key superseded by a new one
    store = tokens.key_store()
    old = store.current()
    new = store.rotate(immediately=True)

    # when pruning now, nothing goes; a day and more later, the old key goes
    assert store.prune() == []
    assert store.prune(now=new.signs_from + tokens.MAX_TOKEN_LIFETIME_SECONDS + 301) == [old.kid]
    assert [k.kid for k in store.keys()] == [new.kid]


def test_tampered_expired_and_foreign_tokens_are_refused(resource) -> None:
    token = _token(resource)
    header, payload, signature = token.split(".")
    with pytest.raises(TokenRefused):
        services.authenticate_token(f"{header}.{payload[:-2]}AA.{signature}")
    expired = tokens.sign({"sub": "8:acs:x_y", "gen": 0, "exp": int(time.time()) - 10})
    with pytest.raises(TokenRefused, match="expired"):
        services.authenticate_token(expired)
    from cryptography.hazmat.primitives.asymmetric import ec

    foreign = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 60},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "unknown"},
    )
    with pytest.raises(TokenRefused, match="unknown key"):
        services.authenticate_token(foreign)
    with pytest.raises(TokenRefused):
        services.authenticate_token("not-a-token")


def test_token_of_a_deleted_resource_is_refused(resource) -> None:
    token = _token(resource)
    services.delete_resource(resource)
    with pytest.raises(TokenRefused):
        services.authenticate_token(token)
