"""Donor keys: how the append-only tables tell donors apart without holding who they are.

A donor key is a keyed hash (HMAC-SHA256 under a server secret) of the donor's
normalised e-mail address, or of the name an admin typed for an offline
payment. The ledger and the per-period donor sets only ever hold these keys, so
they count a donor once without storing personal data. Without the secret a key
cannot be recomputed from a guessed address, as a plain hash could.

The output of these functions must never change for the same input and
secret: existing keys would stop matching new payments of the same donor.
A new scheme gets a new label, as the erasure tombstone has its own prefix.

Pure: no Flask, no database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEYED_PREFIX = "hmac:"
TOMBSTONE_PREFIX = "erased:"
# Purpose label: the same configured secret yields unrelated keys for other uses.
_PURPOSE = b"tracker donor-key v1"


def derive_secret(material: str) -> bytes:
    """The HMAC key for donor keys, derived from a configured secret with a purpose label.

    :param material: ``TRACKER_DONOR_KEY_SECRET`` if set, else ``TRACKER_SECRET_KEY``.
    :return: 32 bytes.
    """
    return hmac.new(material.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def normalise(value: str) -> str:
    """Strip and case-fold, so ``" Ada@Example.ORG"`` and ``"ada@example.org"`` are one donor."""
    return value.strip().casefold()


def _keyed(secret: bytes, kind: str, value: str) -> str:
    if len(secret) < 16:
        raise ValueError("a donor key secret needs at least 16 bytes")
    # The kind is part of the message: an e-mail and a name never share a key.
    mac = hmac.new(secret, f"{kind}\x00{value}".encode(), hashlib.sha256)
    return KEYED_PREFIX + mac.hexdigest()


def donor_key(secret: bytes, email: str) -> str:
    """The key a donor with this e-mail address is counted under.

    :param secret: from :func:`derive_secret`.
    :return: ``"hmac:"`` and 64 hex digits (69 characters).
    :raise ValueError: for an empty address or a secret shorter than 16 bytes.
    """
    address = normalise(email)
    if not address:
        raise ValueError("an empty e-mail address has no donor key")
    return _keyed(secret, "email", address)


def named_donor_key(secret: bytes, name: str) -> str:
    """The key of an offline donor known by the name an admin typed.

    :raise ValueError: for an empty name or a secret shorter than 16 bytes.
    """
    value = normalise(name)
    if not value:
        raise ValueError("an empty name has no donor key")
    return _keyed(secret, "name", value)


def legacy_donor_key(secret: bytes, stored: str) -> str | None:
    """The keyed form of a donor key written before keys were hashed, or None if not one.

    Old keys were ``email:<address>`` and ``name:<name>``, already normalised by
    the code that wrote them. A remainder that normalising would change (written by
    hand) is hashed as it is under its own label, so two old keys never merge into
    one and no period's donor count changes.
    """
    kind, sep, value = stored.partition(":")
    if not sep or kind not in ("email", "name") or not value:
        return None
    if normalise(value) == value:
        return _keyed(secret, kind, value)
    return _keyed(secret, f"{kind}-verbatim", value)


def tombstone() -> str:
    """A random key that replaces an erased donor's: counts stay, the link to the person goes."""
    return TOMBSTONE_PREFIX + secrets.token_hex(32)


def is_keyed(key: str) -> bool:
    """Whether ``key`` was derived from personal data (an e-mail or a name)."""
    return key.startswith(KEYED_PREFIX)
