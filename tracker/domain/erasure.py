"""What erasing a donor rewrites in stored texts and JSON: pure functions, no database.

Two tools. :func:`scrub_text` replaces every occurrence of the donor's own
strings (the e-mail address, names, messages) in a free text. :func:`scrub_json`
does the same inside a JSON document (a Stripe event, audit details) and, for a
document about the donor, also empties the fields that carry personal data by
their very name (``email``, ``billing_details``, ``customer_details``, …),
whatever they hold, while keeping the ids, amounts, statuses and our own
metadata that the ledger's rules read, so a scrubbed event can still be applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ERASED = "[erased]"
# Shorter strings would match inside unrelated words ("Al" in "Alabama"); the
# fields that hold a short name are emptied by name instead.
MIN_NEEDLE = 3

# Fields that hold personal data wherever they appear in a Stripe object or our
# audit details: emptied (set to null) in a document about the donor.
PERSONAL_FIELDS = frozenset(
    {
        # Stripe: Checkout Session, PaymentIntent, Charge, Invoice, Customer, Dispute
        "email",
        "name",
        "phone",
        "address",
        "receipt_email",
        "customer_email",
        "customer_name",
        "customer_phone",
        "customer_address",
        "customer_shipping",
        "customer_details",
        "customer_tax_ids",
        "billing_details",
        "billing_address",
        "shipping",
        "shipping_details",
        "shipping_address",
        "custom_fields",
        "payment_method_details",
        "evidence",
        "customer_email_address",
        "customer_purchase_ip",
        "ip_address",
        "client_ip",
        "description",
        # Our own audit details and pledge texts
        "donor",
        "donor_name",
        "donor_email",
        "message",
    }
)
# Read by the event handlers, never free text: left exactly as they are.
PROTECTED_FIELDS = frozenset(
    {
        "id",
        "object",
        "type",
        "currency",
        "status",
        "payment_status",
        "mode",
        "livemode",
        "created",
        "api_version",
    }
)
# Our metadata keys (which campaign, which pledge): kept; any other metadata
# value may be anything a Payment Link's form asked the donor for.
OUR_METADATA_PREFIX = "tracker_"


@dataclass(frozen=True, slots=True)
class Needles:
    """The donor's own strings to find and replace, matched case-insensitively."""

    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Needles:
        """Build from the e-mail, names and messages; blanks and very short ones are skipped."""
        words = {v.strip() for v in values if v and len(v.strip()) >= MIN_NEEDLE}
        if not words:
            return cls(None)
        # Longest first, so a name inside a message is not replaced before the message.
        ordered = sorted(words, key=lambda w: (-len(w), w))
        return cls(re.compile("|".join(re.escape(w) for w in ordered), re.IGNORECASE))


def scrub_text(text: str, needles: Needles) -> str:
    """``text`` with every occurrence of a needle replaced by ``[erased]``."""
    if needles.pattern is None:
        return text
    return needles.pattern.sub(ERASED, text)


def scrub_json(value: Any, needles: Needles, *, about_donor: bool) -> Any:
    """A copy of a JSON value with the donor's strings replaced.

    :param about_donor: the document concerns the donor (their payment's event, the
        audit record of their entry): also empty every :data:`PERSONAL_FIELDS` field
        and the metadata that is not ours.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if about_donor and key in PERSONAL_FIELDS and item is not None:
                out[key] = None
            elif about_donor and key == "metadata" and isinstance(item, dict):
                out[key] = {
                    k: (v if k.startswith(OUR_METADATA_PREFIX) else None) for k, v in item.items()
                }
            elif key in PROTECTED_FIELDS and not isinstance(item, dict | list):
                out[key] = item
            else:
                out[key] = scrub_json(item, needles, about_donor=about_donor)
        return out
    if isinstance(value, list):
        return [scrub_json(item, needles, about_donor=about_donor) for item in value]
    if isinstance(value, str):
        return scrub_text(value, needles)
    return value


# Where Stripe writes a person's name or address: harvested as needles (a billing
# name may differ from the one typed on the donate page). A bare "name" elsewhere
# may be a product's, so only these.
_NAME_FIELDS = frozenset({"customer_name"})
_EMAIL_FIELDS = frozenset({"email", "receipt_email", "customer_email", "customer_email_address"})
_PERSON_PARENTS = frozenset(
    {"customer_details", "billing_details", "shipping", "shipping_details", "customer_shipping"}
)


def personal_strings(value: Any) -> set[str]:
    """The names and e-mail addresses a JSON value holds about a person, at any depth.

    What a Stripe object knows of the donor (the name on the card, the billing
    name), so those are also scrubbed where they appear as free text elsewhere.
    """
    found: set[str] = set()

    def walk(item: Any, parent: str | None) -> None:
        if isinstance(item, dict):
            for key, sub in item.items():
                person = key in _NAME_FIELDS or key in _EMAIL_FIELDS
                if person or (key == "name" and parent in _PERSON_PARENTS):
                    if isinstance(sub, str) and sub.strip():
                        found.add(sub.strip())
                else:
                    walk(sub, key)
        elif isinstance(item, list):
            for sub in item:
                walk(sub, parent)

    walk(value, None)
    return found
