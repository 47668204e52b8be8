"""Applying Stripe events to pledges and the ledger, through the inbox.

Every event goes the same way, whether a webhook delivered it, the retry job
picked it up again or reconciliation listed it from the API:

1. it is stored raw in ``stripe_events`` (``INSERT … ON CONFLICT DO NOTHING``)
   and that is committed before anything else, so it can never be lost;
2. it is applied in one transaction that holds the inbox row's lock, so
   concurrent deliveries of one event take turns and the later ones see it
   done;
3. an error rolls the whole application back and marks the event ``failed``
   in a transaction of its own, for a retry.

What makes duplicates and any arrival order harmless is the ledger's unique
``(source, reference)`` plus the rules in :mod:`tracker.domain.stripe_rules`.
An event about a payment not booked yet (a refund overtaking its payment) is
``deferred``: it is applied in the transaction that books the payment, or by
the retry job, which can also ask Stripe for the payment.

The package, by concern (each module imports only those above it):

- :mod:`.common`: the vocabulary they share: the handled types, the inbox
  statuses that are final or retryable, :class:`Result`, :class:`Delivery`,
  :class:`RetryPolicy`, the errors, reading ids, amounts and metadata from
  Stripe's objects, and the package's one logger;
- :mod:`.targets`: whose money an object is (the campaign and the pledge it
  names, the most trusted id first), and moving a pledge forward without
  overwriting a concurrent move;
- :mod:`.payments`: booking a payment once whichever event reports it first
  (the ``stripe_payments`` claim, the pledge created for money given outside
  our donate page, the ledger entry); the Checkout Session and PaymentIntent
  events;
- :mod:`.refunds`: ``charge.refunded`` and the ``charge.dispute.*`` events,
  never taking back more than a payment holds;
- :mod:`.subscriptions`: ``invoice.paid`` (a monthly payment, booked through
  :mod:`.payments`) and ``customer.subscription.deleted``;
- :mod:`.inbox`: the inbox and delivery: :func:`store_event`,
  :func:`process_event` under the row's lock, :func:`apply_event` (the
  dispatch to the handlers above, then waking the events deferred until the
  payment it booked), :func:`mark_failed`, :func:`deliver` (the webhook's
  two transactions) and the SQLite writers' turn;
- :mod:`.recovery`: :func:`retry_inbox` (the scheduler's retry job, resolving
  deferred events through the Stripe API), :func:`reconcile` (from Stripe's
  event list) and :func:`retry_event` (an admin's retry).

Callers import from the package, not its modules. Each module imports what
it uses, so a test that replaces a name (``record_entry``, ``_wake``) replaces
it in every module that holds it (``tests.stripe_helpers.rebind``).
"""

from __future__ import annotations

from tracker.domain.ledger import LedgerError
from tracker.gateway.events import fetch_payment_intent, invoice_of_payment_intent, list_events
from tracker.gateway.webhooks import WebhookEvent, parse_event
from tracker.services.ledger import record_entry
from tracker.services.stripe_events.common import (
    CURRENCY_MISMATCH,
    DEFAULT_POLICY,
    HANDLED_TYPES,
    Delivery,
    EventError,
    ProcessingFailed,
    Result,
    RetryPolicy,
)
from tracker.services.stripe_events.inbox import (
    _wake as _wake,
)
from tracker.services.stripe_events.inbox import (
    apply_event,
    deliver,
    inbox_events,
    mark_failed,
    process_event,
    store_event,
)
from tracker.services.stripe_events.payments import (
    _book_payment as _book_payment,
)
from tracker.services.stripe_events.payments import (
    _pledge_paid as _pledge_paid,
)
from tracker.services.stripe_events.recovery import Report, reconcile, retry_event, retry_inbox

__all__ = [
    "CURRENCY_MISMATCH",
    "DEFAULT_POLICY",
    "HANDLED_TYPES",
    "Delivery",
    "EventError",
    "LedgerError",
    "ProcessingFailed",
    "Report",
    "Result",
    "RetryPolicy",
    "WebhookEvent",
    "apply_event",
    "deliver",
    "fetch_payment_intent",
    "inbox_events",
    "invoice_of_payment_intent",
    "list_events",
    "mark_failed",
    "parse_event",
    "process_event",
    "reconcile",
    "record_entry",
    "retry_event",
    "retry_inbox",
    "store_event",
]
