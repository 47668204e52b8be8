"""Verifying Stripe webhook deliveries and reading the event out of them.

Stripe signs ``"<timestamp>.<raw body>"`` with HMAC-SHA256 under the
endpoint's secret and sends ``Stripe-Signature: t=<timestamp>,v1=<hex>``.
stripe-python checks the signature and rejects old timestamps; it accepts
any timestamp in the future, so a captured request signed with a skewed
clock would stay replayable for as long as the skew. We reject both sides.
Several secrets may be configured at once, so an endpoint secret can be
rolled without a window in which deliveries fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from flask import Flask, current_app

from tracker.gateway.client import StripeGateway

TOLERANCE_SECONDS = 300
# Stripe's events nest a dozen levels at most. Deeper bodies are refused before
# anything reads them: json.loads alone fails only somewhere near the
# interpreter's recursion limit, which depends on how deep the caller's stack is.
MAX_DEPTH = 64


class InvalidWebhook(ValueError):
    """A delivery that must be refused with a 4xx; ``str()`` says why (no secrets in it)."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified Stripe event: its envelope, its object as plain JSON, and the raw text."""

    id: str
    type: str
    livemode: bool
    created: datetime
    object: dict[str, Any]
    payload: str


def configured_livemode(app: Flask | None = None) -> bool | None:
    """The mode of the configured Stripe key: True for live, False for test.

    :return: None when no key is configured; events of either mode are then
        applied (a Stripe endpoint only sends events of its own mode anyway).
    """
    gateway: StripeGateway | None = (app or current_app).extensions.get("tracker.stripe")
    return None if gateway is None else gateway.livemode


def _timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise InvalidWebhook("the Stripe-Signature header has no valid timestamp")


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> WebhookEvent:
    """Check a delivery's signature and timestamp, then parse the event.

    :param body: the raw request body, exactly as received.
    :param header: the ``Stripe-Signature`` header, or None when absent.
    :param secrets: the endpoint secrets currently accepted (any one may match).
    :param tolerance: how far, in seconds, the signed timestamp may be from ``now``
        in either direction.
    :param now: the current Unix time (tests); default the clock.
    :return: the verified event.
    :raise InvalidWebhook: for a missing or malformed header, no matching signature,
        a timestamp too old or too far in the future, or a body that is not a
        JSON Stripe event.
    """
    if not header:
        raise InvalidWebhook("missing Stripe-Signature header")
    if not header.isascii():
        # stripe-python's constant-time compare raises TypeError on non-ASCII text.
        raise InvalidWebhook("the Stripe-Signature header is not ASCII")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhook("the body is not UTF-8 text") from None
    signed_at = _timestamp(header)
    for secret in secrets:
        try:
            # tolerance=None: the library's age check is one-sided; ours follows.
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise InvalidWebhook("no signature matches a configured webhook secret")
    current = time.time() if now is None else now
    if signed_at < current - tolerance:
        raise InvalidWebhook(f"the signature timestamp is more than {tolerance} s old")
    if signed_at > current + tolerance:
        raise InvalidWebhook(f"the signature timestamp is more than {tolerance} s in the future")
    return parse_event(text)


def _too_deep(data: Any) -> bool:
    """Whether lists and objects in ``data`` nest more than :data:`MAX_DEPTH` levels."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            pending.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            pending.extend((value, depth + 1) for value in item)
    return False


def _valid_text(data: Any) -> bool:
    """Whether every string in ``data`` (keys too) can be stored: no lone surrogate, no NUL.

    A body that is valid UTF-8 can still spell ``"\\ud800"`` or ``"\\u0000"`` as JSON
    escapes. Neither is text Stripe sends; the first cannot be encoded for the
    database at all (``UnicodeEncodeError``), the second is refused by PostgreSQL.
    Only called when the text has an escape, so the usual event costs nothing.
    """
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def parse_event(text: str) -> WebhookEvent:
    """Read a Stripe event from its JSON text (a verified delivery, or the events API).

    :raise InvalidWebhook: when the text is not JSON or lacks an event's fields.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidWebhook("the body is not JSON") from None
    except RecursionError:
        # A signed body of a thousand nested brackets: no Stripe event nests like that.
        raise InvalidWebhook("the body is not a Stripe event (nested too deeply)") from None
    # Only a text with that many brackets can nest that deep: the usual event skips the walk.
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(data):
        raise InvalidWebhook("the body is not a Stripe event (nested too deeply)")
    if "\\u" in text and not _valid_text(data):
        raise InvalidWebhook("the body is not a Stripe event (a string is not valid Unicode)")
    if not isinstance(data, dict):
        raise InvalidWebhook("the body is not a Stripe event")
    ident, kind, created = data.get("id"), data.get("type"), data.get("created")
    inner = data.get("data")
    obj = inner.get("object") if isinstance(inner, dict) else None
    if (
        not isinstance(ident, str)
        or not ident
        or len(ident) > 255
        or not isinstance(kind, str)
        or not kind
        or len(kind) > 100
        or not isinstance(created, int)
        or isinstance(created, bool)
        or not isinstance(obj, dict)
    ):
        raise InvalidWebhook("the body is not a Stripe event (id, type, created, data.object)")
    try:
        when = datetime.fromtimestamp(created, UTC)
    except (OverflowError, ValueError, OSError):
        raise InvalidWebhook("the event's created time is out of range") from None
    return WebhookEvent(
        id=ident,
        type=kind,
        livemode=bool(data.get("livemode", False)),
        created=when,
        object=obj,
        payload=text,
    )
