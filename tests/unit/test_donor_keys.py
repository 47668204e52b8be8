"""Donor keys: one donor, one key; no key reveals or re-derives without the secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker import create_app
from tracker.config import donor_key_secret
from tracker.domain.donors import (
    TOMBSTONE_PREFIX,
    derive_secret,
    donor_key,
    is_keyed,
    legacy_donor_key,
    named_donor_key,
    tombstone,
)

SECRET = derive_secret("s" * 40)


def test_the_same_address_written_differently_is_one_donor() -> None:
    key = donor_key(SECRET, "ada@example.org")
    assert donor_key(SECRET, "  Ada@Example.ORG\n") == key
    assert donor_key(SECRET, "ADA@EXAMPLE.ORG") == key
    assert donor_key(SECRET, "ada@example.com") != key


def test_a_key_holds_nothing_of_the_address() -> None:
    key = donor_key(SECRET, "ada@example.org")
    assert key.startswith("hmac:") and len(key) == 69 and is_keyed(key)
    assert "ada" not in key and "example" not in key


def test_another_secret_gives_another_key() -> None:
    other = derive_secret("t" * 40)
    assert donor_key(other, "ada@example.org") != donor_key(SECRET, "ada@example.org")


def test_an_address_and_a_name_never_share_a_key() -> None:
    assert donor_key(SECRET, "ada") != named_donor_key(SECRET, "ada")
    assert named_donor_key(SECRET, " Grace HOPPER ") == named_donor_key(SECRET, "grace hopper")


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_values_have_no_key(value: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        donor_key(SECRET, value)
    with pytest.raises(ValueError, match="empty"):
        named_donor_key(SECRET, value)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        donor_key(b"short", "ada@example.org")


def test_legacy_keys_map_to_todays_keys() -> None:
    assert legacy_donor_key(SECRET, "email:ada@example.org") == donor_key(SECRET, "ada@example.org")
    assert legacy_donor_key(SECRET, "name:grace hopper") == named_donor_key(SECRET, "Grace Hopper")
    for other in ("pledge:4", "stripe:pi_1", "offline:x", "email:", "plain"):
        assert legacy_donor_key(SECRET, other) is None


@given(st.sets(st.text(min_size=1, max_size=30), min_size=1, max_size=20))
def test_legacy_keys_never_merge(values: set[str]) -> None:
    # Distinct old keys stay distinct, or a period's donor count would change.
    old = {f"email:{v}" for v in values}
    new = {legacy_donor_key(SECRET, key) for key in old}
    assert None not in new
    assert len(new) == len(old)


def test_tombstones_are_random_and_marked() -> None:
    first, second = tombstone(), tombstone()
    assert first != second
    assert first.startswith(TOMBSTONE_PREFIX) and not is_keyed(first)
    assert len(first) <= 320


def test_the_app_derives_its_secret_from_the_secret_key_unless_given_one(tmp_path: Path) -> None:
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", "SECRET_KEY": "k" * 40}
    derived = donor_key_secret(create_app(base))
    assert derived == derive_secret("k" * 40) and derived != ("k" * 40).encode()
    # Rotating SECRET_KEY while keeping donor keys: give the old one as DONOR_KEY_SECRET.
    rotated = create_app({**base, "SECRET_KEY": "n" * 40, "DONOR_KEY_SECRET": "k" * 40})
    assert donor_key_secret(rotated) == derived
    dedicated = create_app({**base, "DONOR_KEY_SECRET": "d" * 40})
    assert donor_key_secret(dedicated) == derive_secret("d" * 40)
