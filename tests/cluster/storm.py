"""The storm: a client playing Stripe, and the totals it expects, computed on its own.

:func:`plan` draws, from one seed, payments on several campaigns (USD and JPY)
in the three shapes Stripe reports them (a Checkout Session, a PaymentIntent,
a subscription invoice — a card payment often by both of the first two),
partial refunds reported as Stripe does (a ``charge.refunded`` per refund with
the charge's cumulative ``amount_refunded``), and disputes that are won or
lost. It folds them into the totals each campaign must end with: payments,
less the highest cumulative refund, less disputed amounts (an open or lost dispute has
taken the money; a won one gives it back, so it nets to zero) — with
no code of the tracker involved, then adds duplicates and shuffles.

:func:`send` delivers the plan through nginx on many connections, signing
every attempt at the moment it is sent (as Stripe does), and redelivers every
attempt that did not get a 2xx with exponential backoff, until each event has
been acknowledged.
"""

from __future__ import annotations

import heapq
import http.client
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.stripe_helpers import (
    SECRET,
    T0,
    charge,
    checkout_session,
    dispute,
    event,
    invoice,
    payment_intent,
    sign,
)


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """One campaign of the storm and what the client expects of it."""

    slug: str
    currency: str
    raised: int  # minor units (JPY has none)
    payments: int
    tiers: tuple[int, ...]  # major units, as create-campaign takes them

    @property
    def unit(self) -> int:
        """Minor units per major unit (USD cents; yen have none)."""
        return 100 if self.currency == "USD" else 1

    def tiers_crossed(self) -> list[int]:
        """The tiers above zero the final total reaches (each deserves one milestone)."""
        return [t for t in self.tiers if 0 < t * self.unit <= self.raised]


@dataclass(slots=True)
class Plan:
    """Every delivery of the storm, in sending order, and the expected outcome."""

    seed: int
    campaigns: list[CampaignPlan]
    deliveries: list[tuple[str, str]]  # (event id, payload), duplicates included
    distinct: int
    duplicates: int
    by_type: Counter[str]

    def describe(self) -> str:
        """The plan in a few lines, for the test's output (replayable from the seed)."""
        lines = [
            f"storm seed {self.seed}: {len(self.deliveries):,} deliveries = "
            f"{self.distinct:,} distinct events + {self.duplicates:,} duplicates, shuffled",
            "  events: " + ", ".join(f"{t} {n:,}" for t, n in sorted(self.by_type.items())),
        ]
        for c in self.campaigns:
            lines.append(
                f"  {c.slug} ({c.currency}): expect raised {c.raised:,}, {c.payments:,} payments;"
                f" tiers {', '.join(f'{t:,}' for t in c.tiers)} → crosses {len(c.tiers_crossed())}"
            )
        return "\n".join(lines)


CAMPAIGNS = (("usd-news", "USD"), ("usd-radio", "USD"), ("jpy-zine", "JPY"))
# Amounts in minor units: 5 to 500 dollars, 500 to 50,000 yen.
_AMOUNTS = {"USD": (500, 50_000), "JPY": (500, 50_000)}


def plan(
    seed: int, deliveries: int = 10_000, duplicate_share: float = 0.2, *, prefix: str = "storm"
) -> Plan:
    """Draw the storm: ``deliveries`` sends, ``duplicate_share`` of them repeats.

    Campaign slugs and every Stripe id start with ``prefix``, so several storms
    can share one database.

    Tiers are put at 20 %, 45 % and 80 % of each campaign's expected total and one
    above it, so the storm crosses three and the last stays unreached.
    """
    rng = random.Random(seed)
    campaigns_ = [(f"{prefix}-{name}", currency) for name, currency in CAMPAIGNS]
    tag = f"{prefix.replace('-', '')}{seed}"
    distinct_target = round(deliveries * (1 - duplicate_share))
    events: list[tuple[str, str]] = []
    by_type: Counter[str] = Counter()
    clock = T0
    n = 0

    def emit(type_: str, obj: dict[str, Any]) -> None:
        nonlocal clock
        clock += 1
        event_id = f"evt_{tag}_{len(events):06d}"
        events.append((event_id, event(type_, obj, event_id=event_id, created=clock)))
        by_type[type_] += 1

    while len(events) < distinct_target:
        n += 1
        slug, currency = campaigns_[rng.randrange(len(campaigns_))]
        low, high = _AMOUNTS[currency]
        amount = rng.randrange(low, high + 1)
        meta = {"tracker_campaign": slug}
        cur = currency.lower()
        shape = rng.random()
        if shape < 0.15:
            sub = f"sub_{tag}_{n}"
            emit(
                "invoice.paid",
                invoice(
                    meta=meta,
                    subscription=sub,
                    amount=amount,
                    currency=cur,
                    invoice_id=f"in_{tag}_{n}",
                    paid_at=clock,
                ),
            )
            continue
        intent, charge_id = f"pi_{tag}_{n}", f"ch_{tag}_{n}"
        if shape < 0.55:
            emit(
                "checkout.session.completed",
                checkout_session(
                    meta=meta,
                    amount=amount,
                    currency=cur,
                    payment_intent=intent,
                    session_id=f"cs_{tag}_{n}",
                ),
            )
            if rng.random() < 0.5:
                # Stripe also reports the PaymentIntent: one payment, booked once.
                emit(
                    "payment_intent.succeeded",
                    payment_intent(
                        meta=meta,
                        amount=amount,
                        currency=cur,
                        intent_id=intent,
                        charge_id=charge_id,
                    ),
                )
        else:
            emit(
                "payment_intent.succeeded",
                payment_intent(
                    meta=meta, amount=amount, currency=cur, intent_id=intent, charge_id=charge_id
                ),
            )
        fate = rng.random()
        if fate < 0.15:
            # One to three partial refunds, each reported with the cumulative amount.
            cumulative = 0
            for _ in range(rng.randint(1, 3)):
                step = rng.randint(1, max(1, (amount - cumulative) // 2))
                if cumulative + step > amount:
                    break
                cumulative += step
                emit(
                    "charge.refunded",
                    charge(
                        charge_id=charge_id,
                        intent_id=intent,
                        amount=amount,
                        refunded=cumulative,
                        currency=cur,
                    ),
                )
        elif fate < 0.21:
            dispute_id = f"dp_{tag}_{n}"
            won = rng.random() < 0.5
            emit(
                "charge.dispute.created",
                dispute(
                    dispute_id=dispute_id,
                    charge_id=charge_id,
                    intent_id=intent,
                    status="needs_response",
                    amount=amount,
                    currency=cur,
                ),
            )
            emit(
                "charge.dispute.closed",
                dispute(
                    dispute_id=dispute_id,
                    charge_id=charge_id,
                    intent_id=intent,
                    status="won" if won else "lost",
                    amount=amount,
                    currency=cur,
                ),
            )
    # The last payment's group may overshoot the target by a few events: they are
    # kept (whole groups), and the duplicates make up the rest of the deliveries.
    raised, payments = _fold(events, [slug for slug, _ in campaigns_])
    duplicates = [
        events[rng.randrange(len(events))] for _ in range(max(0, deliveries - len(events)))
    ]
    sends = events + duplicates
    rng.shuffle(sends)
    campaigns = []
    for slug, currency in campaigns_:
        unit = 100 if currency == "USD" else 1
        total_major = raised[slug] // unit
        tiers = (0, *(max(1, total_major * p // 100) for p in (20, 45, 80)), total_major * 2 + 10)
        campaigns.append(CampaignPlan(slug, currency, raised[slug], payments[slug], tiers))
    return Plan(seed, campaigns, sends, len(events), len(duplicates), by_type)


def _fold(events: list[tuple[str, str]], slugs: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """The expected (raised, payments) per campaign from distinct events, by Stripe's rules."""
    raised = dict.fromkeys(slugs, 0)
    payments = dict.fromkeys(raised, 0)
    paid: dict[str, tuple[str, int]] = {}  # payment intent or invoice → (slug, amount)
    refunded: dict[str, int] = {}
    withdrawn: dict[str, int] = {}
    won: dict[str, int] = {}
    for _, payload in events:
        doc = json.loads(payload)
        obj = doc["data"]["object"]
        kind = doc["type"]
        if kind == "invoice.paid":
            slug = obj["parent"]["subscription_details"]["metadata"]["tracker_campaign"]
            paid[obj["id"]] = (slug, obj["amount_paid"])
        elif kind == "checkout.session.completed":
            paid[obj["payment_intent"]] = (obj["metadata"]["tracker_campaign"], obj["amount_total"])
        elif kind == "payment_intent.succeeded":
            paid[obj["id"]] = (obj["metadata"]["tracker_campaign"], obj["amount"])
        elif kind == "charge.refunded":
            key = obj["payment_intent"]
            refunded[key] = max(refunded.get(key, 0), obj["amount_refunded"])
        elif kind.startswith("charge.dispute."):
            # An open dispute has taken the money already; only winning gives it back.
            key = obj["payment_intent"]
            withdrawn[key] = obj["amount"]
            if obj["status"] == "won":
                won[key] = obj["amount"]
    for key, (slug, amount) in paid.items():
        raised[slug] += amount - refunded.get(key, 0) - withdrawn.get(key, 0) + won.get(key, 0)
        payments[slug] += 1
    return raised, payments


def payment_number(stripe_id: str) -> str:
    """The payment a storm id belongs to (``pi_storm1_42``, ``ch_storm1_42:refunded:900`` → 42)."""
    return stripe_id.split(":", 1)[0].rsplit("_", 1)[-1]


def expected_by_payment(deliveries: list[tuple[str, str]]) -> dict[str, int]:
    """The net amount the client expects of each payment in ``deliveries`` (diagnostics)."""
    net: dict[str, int] = {}
    refunded: dict[str, int] = {}
    seen: set[str] = set()
    for event_id, payload in deliveries:
        if event_id in seen:
            continue
        seen.add(event_id)
        doc = json.loads(payload)
        obj, kind = doc["data"]["object"], doc["type"]
        if kind == "invoice.paid":
            net[payment_number(obj["id"])] = obj["amount_paid"]
        elif kind in ("checkout.session.completed", "payment_intent.succeeded"):
            key = payment_number(obj["payment_intent"] if "payment_intent" in obj else obj["id"])
            net[key] = obj.get("amount_total", obj.get("amount"))
        elif kind == "charge.refunded":
            key = payment_number(obj["id"])
            refunded[key] = max(refunded.get(key, 0), obj["amount_refunded"])
        elif kind.startswith("charge.dispute."):
            key = payment_number(obj["id"])
            net[key + ":withdrawn"] = -obj["amount"]
            if obj["status"] == "won":
                net[key + ":reinstated"] = obj["amount"]
    for key, amount in refunded.items():
        net[key + ":refunds"] = -amount
    folded: dict[str, int] = {}
    for key, amount in net.items():
        number = key.split(":", 1)[0]
        folded[number] = folded.get(number, 0) + amount
    return folded


# --------------------------------------------------------------------------- sending


@dataclass(slots=True)
class Attempt:
    """One HTTP attempt: when it started (monotonic), how long it took, what it got."""

    started: float
    seconds: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)


@dataclass(slots=True)
class SendReport:
    """What :func:`send` did."""

    attempts: list[Attempt] = field(default_factory=list)
    redeliveries: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0
    acknowledged: int = 0
    given_up: int = 0

    @property
    def seconds(self) -> float:
        """Wall time from the first send to the last acknowledgement."""
        return self.finished - self.started

    def rate(self) -> float:
        """Acknowledged deliveries per second."""
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(
        self, since: float | None = None, until: float | None = None
    ) -> tuple[float, float]:
        """p50 and p99 (ms) of successful attempts that started in [since, until)."""
        values = sorted(
            a.seconds * 1000
            for a in self.attempts
            if 200 <= a.status < 300
            and (since is None or a.started >= since)
            and (until is None or a.started < until)
        )
        if not values:
            return float("nan"), float("nan")
        if len(values) == 1:
            return values[0], values[0]
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cuts[49], cuts[98]


def send(
    deliveries: list[tuple[str, str]],
    host: str,
    port: int,
    *,
    connections: int = 32,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    deadline: float = 600.0,
    timeout: float = 20.0,
) -> SendReport:
    """POST every delivery to ``http://host:port/webhooks/stripe`` until each got a 2xx.

    A non-2xx answer or no answer at all is redelivered after 0.2 s, 0.4 s, …
    (capped at 4 s, with jitter), as Stripe redelivers. ``on_progress`` is
    called with the number of first sends so far (the fault schedule hangs on
    it). Gives up only after ``deadline`` seconds (counted in ``given_up``).
    """
    rng = random.Random(seed)
    lock = threading.Condition()
    report = SendReport()
    # (due time, sequence, index, attempt number) of each pending delivery.
    queue: list[tuple[float, int, int, int]] = [(0.0, i, i, 0) for i in range(len(deliveries))]
    heapq.heapify(queue)
    outstanding = len(deliveries)
    first_sends = 0
    seq = len(deliveries)
    report.started = time.monotonic()
    stop_at = report.started + deadline
    stopping = threading.Event()  # set when the caller is interrupted (Ctrl-C)

    def take() -> tuple[int, int] | None:
        nonlocal first_sends
        with lock:
            while True:
                if outstanding == 0 or time.monotonic() > stop_at or stopping.is_set():
                    return None
                if queue:
                    due, _, index, attempt = queue[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(queue)
                        if attempt == 0:
                            first_sends += 1
                            if on_progress is not None:
                                on_progress(first_sends)
                        return index, attempt
                    lock.wait(min(wait, 0.5))
                else:
                    lock.wait(0.5)

    def done(index: int, attempt: int, ok: bool) -> None:
        nonlocal outstanding, seq
        with lock:
            if ok:
                outstanding -= 1
                report.acknowledged += 1
                if outstanding == 0:
                    report.finished = time.monotonic()
            else:
                report.redeliveries += 1
                delay = min(4.0, 0.2 * 2**attempt) * (0.5 + rng.random())
                seq += 1
                heapq.heappush(queue, (time.monotonic() + delay, seq, index, attempt + 1))
            lock.notify_all()

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while (job := take()) is not None:
            index, attempt = job
            _, payload = deliveries[index]
            body = payload.encode()
            started = time.monotonic()
            status = 0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request(
                    "POST",
                    "/webhooks/stripe",
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "Stripe-Signature": sign(payload, SECRET),
                    },
                )
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            elapsed = time.monotonic() - started
            with lock:
                report.attempts.append(Attempt(started, elapsed, status))
                report.statuses[status] += 1
            done(index, attempt, 200 <= status < 300)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        # Interrupted: stop sending now, so the servers can be stopped at once.
        stopping.set()
        with lock:
            lock.notify_all()
        raise
    report.given_up = outstanding
    if not report.finished:
        report.finished = time.monotonic()
    return report
