"""User access tokens: ES256 JWTs signed with rotating keys kept in SIGNING_KEYS_DIR.

Each key is one PEM file named `<signs-from unix time in ns>-<kid>.pem`. Every key in the folder
verifies and is published in the JWKS at once; the newest key whose time has come signs. A
rotated key starts signing KEY_ACTIVATION_SECONDS later (the JWKS cache lifetime), so services
that cached the JWKS know it before they meet a token it signed. Rotating never invalidates an
unexpired token; keys superseded for longer than the longest token lifetime are pruned.
ES256 signs ~10x faster than RS256 here and every JOSE library verifies it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from jwt.algorithms import ECAlgorithm

ALGORITHM = "ES256"
MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600
KEY_ACTIVATION_SECONDS = 300  # also the JWKS response's Cache-Control max-age


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or signed by an unknown key."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    signs_from: int
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


def _key_id(private_key: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638 thumbprint-like id: stable for a key, distinct between keys."""
    import hashlib

    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


class KeyStore:
    """The signing keys of one folder, re-read when the folder changes (checked each second)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._mtime: float | None = None
        self._checked_at = 0.0

    def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < 1.0 and self._keys:
            return
        with self._lock:
            self._checked_at = now
            self.directory.mkdir(parents=True, exist_ok=True)
            mtime = self.directory.stat().st_mtime
            if mtime == self._mtime and self._keys and not force:
                return
            keys = []
            for path in sorted(self.directory.glob("*.pem")):
                signs_from, _, kid = path.stem.partition("-")
                pem = path.read_bytes()
                private_key = serialization.load_pem_private_key(pem, password=None)
                assert isinstance(private_key, ec.EllipticCurvePrivateKey)
                keys.append(
                    SigningKey(
                        kid=kid, signs_from=int(signs_from) // 10**9, private_key=private_key
                    )
                )
            self._keys = keys
            self._mtime = mtime

    def keys(self) -> list[SigningKey]:
        self._refresh()
        if not self._keys:
            self.rotate(immediately=True)
        return list(self._keys)

    def current(self) -> SigningKey:
        keys = self.keys()
        now = time.time()
        # The first key of a deployment signs at once; later ones after their activation.
        return next((key for key in reversed(keys) if key.signs_from <= now), keys[0])

    def find(self, kid: str) -> SigningKey | None:
        for key in self.keys():
            if key.kid == kid:
                return key
        self._refresh(force=True)  # another process may have just rotated
        return next((key for key in self._keys if key.kid == kid), None)

    def rotate(self, *, immediately: bool = False) -> SigningKey:
        """Publish a new key that signs after KEY_ACTIVATION_SECONDS (at once with
        `immediately`, e.g. when the current key leaked); older keys keep verifying."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        kid = _key_id(private_key)
        # Nanoseconds: names sort by age even for keys made in the same second.
        signs_from_ns = time.time_ns() + (0 if immediately else KEY_ACTIVATION_SECONDS * 10**9)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{signs_from_ns:020d}-{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        self._refresh(force=True)
        return SigningKey(kid=kid, signs_from=signs_from_ns // 10**9, private_key=private_key)

    def prune(self, *, now: float | None = None) -> list[str]:
        """Delete keys superseded longer ago than a token can live. Returns their kids."""
        now = time.time() if now is None else now
        keys = self.keys()
        removed = []
        for older, newer in pairwise(keys):
            if now - newer.signs_from > MAX_TOKEN_LIFETIME_SECONDS + 300:
                for path in self.directory.glob(f"*-{older.kid}.pem"):
                    path.unlink(missing_ok=True)
                removed.append(older.kid)
        if removed:
            self._refresh(force=True)
        return removed

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys()]}


_stores: dict[str, KeyStore] = {}  # by the setting's text: a Path per call cost 2% of a token


def key_store() -> KeyStore:
    directory = str(settings.SIGNING_KEYS_DIR)
    store = _stores.get(directory)
    if store is None:
        store = _stores.setdefault(directory, KeyStore(Path(directory)))
    return store


def sign(claims: dict[str, Any]) -> str:
    """Sign claims as a JWT whose payload segment has no '-' or '_'.

    The ACS Python SDK decodes the payload with the standard base64 alphabet, which drops
    those two characters silently; a padding claim shifts the byte alignment until none
    is left (one or two extra tries at most, and only for payloads with '>', '?' or '~').
    """
    key = key_store().current()
    payload = dict(claims)
    for padding in range(4):
        if padding:
            payload["pad"] = "0" * padding
        token = jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        segment = token.split(".")[1]
        if "-" not in segment and "_" not in segment:
            return token
    raise RuntimeError("could not encode a token payload without '-' or '_'")


def verify(token: str) -> dict[str, Any]:
    """Check the signature and expiry; return the claims. Raises InvalidToken."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken("The token is malformed.") from error
    key = key_store().find(str(header.get("kid", "")))
    if key is None:
        raise InvalidToken("The token was signed by an unknown key.")
    try:
        return jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as error:
        raise InvalidToken("The token has expired.") from error
    except jwt.PyJWTError as error:
        raise InvalidToken("The token is invalid.") from error
