"""API keys: ``pk_<id>_<secret>``, stored as the SHA-256 of the whole key (the secret is 32 random
bytes, so a plain hash cannot be reversed by guessing), compared in constant time, never logged.
Scopes: ``read`` < ``write`` < ``admin`` (a key with a scope has the ones below it)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from penchant.errors import ConfigError
from penchant.serve.store import Store

SCOPES = ("read", "write", "admin")
KEY_SHAPE = ("a key looks like pk_<id>_<secret>: 'pk_', an id of letters and digits, '_', then a secret of at least "
             "16 characters (e.g. pk_admin1_ followed by 40 random letters; `penchant keys create` makes one)")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, name: str, scope: str, key: str | None = None) -> str:
    """Register a key with ``scope`` and return it (shown once). ``key``: use this one (bootstrap)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if key is None:
        key = f"pk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    key_id = key_id_of(key)
    if key_id is None:
        raise ConfigError(KEY_SHAPE)
    store.add_key(key_id, name, digest(key), scope)
    return key


def bearer(authorization: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header value, or None."""
    return authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None


def key_id_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "pk" or not parts[1].isalnum() or len(parts[2]) < 16 or not parts[2].isprintable():
        return None
    return parts[1]


def check_key(store: Store, key: str | None, needed: str) -> tuple[bool, bool, str | None]:
    """(known and not revoked, has the ``needed`` scope, key id)."""
    if not key:
        return False, False, None
    key_id = key_id_of(key)
    row = store.key(key_id) if key_id else None
    if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["hash"], digest(key)):
        return False, False, key_id
    return True, SCOPES.index(row["scopes"]) >= SCOPES.index(needed), key_id
