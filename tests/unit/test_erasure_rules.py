"""The pure scrubbing rules: what an erasure rewrites in texts and JSON, and what it keeps."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.erasure import (
    ERASED,
    PROTECTED_FIELDS,
    Needles,
    personal_strings,
    scrub_json,
    scrub_text,
)

NEEDLES = Needles.of(["ada@example.org", "Ada Lovelace", "A. Lovelace", "Al", "", None])


def test_text_is_scrubbed_case_insensitively() -> None:
    text = "Cheque from ADA LOVELACE (Ada@Example.org), card: a. lovelace"
    assert scrub_text(text, NEEDLES) == f"Cheque from {ERASED} ({ERASED}), card: {ERASED}"


def test_very_short_needles_are_skipped() -> None:
    # "Al" would eat "Alabama"; a short name is emptied by its field instead.
    assert scrub_text("Alabama", NEEDLES) == "Alabama"
    assert scrub_text("anything", Needles.of([])) == "anything"


def test_regex_characters_in_needles_are_literal() -> None:
    needles = Needles.of(["a.b+c@example.org"])
    assert scrub_text("axb+c@example.org a.b+c@example.org", needles) == (
        f"axb+c@example.org {ERASED}"
    )


CHECKOUT: dict[str, Any] = {
    "id": "evt_1",
    "type": "checkout.session.completed",
    "created": 1,
    "data": {
        "object": {
            "id": "cs_1",
            "object": "checkout.session",
            "amount_total": 2500,
            "currency": "usd",
            "payment_status": "paid",
            "payment_intent": "pi_1",
            "customer_details": {"email": "ada@example.org", "name": "Ada"},
            "metadata": {"tracker_campaign": "fund", "tracker_pledge": "7", "note": "for Ada"},
            "custom_fields": [{"key": "dedication", "text": {"value": "to my cat"}}],
        }
    },
}


def test_an_event_about_the_donor_loses_every_personal_field_and_keeps_the_rest() -> None:
    scrubbed = scrub_json(CHECKOUT, NEEDLES, about_donor=True)
    obj = scrubbed["data"]["object"]
    assert obj["customer_details"] is None and obj["custom_fields"] is None
    assert obj["metadata"] == {"tracker_campaign": "fund", "tracker_pledge": "7", "note": None}
    for key in ("id", "object", "amount_total", "currency", "payment_status", "payment_intent"):
        assert obj[key] == CHECKOUT["data"]["object"][key]
    assert scrubbed["type"] == CHECKOUT["type"]
    assert CHECKOUT["data"]["object"]["customer_details"] is not None  # a copy


def test_another_document_only_loses_the_donor_strings() -> None:
    scrubbed = scrub_json(CHECKOUT, Needles.of(["ada@example.org"]), about_donor=False)
    obj = scrubbed["data"]["object"]
    assert obj["customer_details"] == {"email": ERASED, "name": "Ada"}
    assert obj["metadata"]["note"] == "for Ada"


def test_ids_and_statuses_are_never_rewritten() -> None:
    needles = Needles.of(["paid", "usd"])
    scrubbed = scrub_json(CHECKOUT, needles, about_donor=False)
    assert scrubbed["data"]["object"]["payment_status"] == "paid"
    assert scrubbed["data"]["object"]["currency"] == "usd"


def test_personal_strings_are_what_stripe_knows_of_a_person() -> None:
    charge = {
        "billing_details": {"name": "A. Lovelace", "email": "ada@example.org", "phone": "1"},
        "receipt_email": "ada@work.example",
        "shipping": {"name": "Ada L.", "address": {"line1": "12 Square"}},
        "lines": [{"price": {"product": {"name": "Donation to Fund"}}}],
        "invoice": {"customer_name": "Ada Lovelace"},
    }
    assert personal_strings(charge) == {
        "A. Lovelace",
        "ada@example.org",
        "ada@work.example",
        "Ada L.",
        "Ada Lovelace",
    }


DONOR = "secret-donor@example.org"
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.builds(lambda a, b: f"{a}{DONOR.upper()}{b}", st.text(max_size=5), st.text(max_size=5)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8).filter(lambda k: k not in PROTECTED_FIELDS), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@given(JSON_VALUES, st.booleans())
def test_no_needle_survives_anywhere(value: Any, about_donor: bool) -> None:
    out = scrub_json(
        {"note": value, "nested": [value]}, Needles.of([DONOR]), about_donor=about_donor
    )
    assert DONOR not in repr(out).casefold()
