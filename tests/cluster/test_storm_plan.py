"""The storm's plan, and the client's own arithmetic that the cluster test trusts.

Pure and fast: no process, no database. If the oracle were wrong, the cluster
test could pass on wrong totals (or fail on right ones).
"""

from __future__ import annotations

import json
from collections import Counter

from tests.cluster.storm import _fold, expected_by_payment, plan
from tests.stripe_helpers import (
    charge,
    checkout_session,
    dispute,
    event,
    invoice,
    payment_intent,
)


def test_the_plan_is_replayable_from_its_seed_and_has_what_the_issue_asks() -> None:
    first, again = plan(5), plan(5)
    assert first.deliveries == again.deliveries
    assert plan(6).deliveries != first.deliveries
    assert len(first.deliveries) == 10_000
    ids = Counter(event_id for event_id, _ in first.deliveries)
    assert len(ids) == first.distinct
    assert sum(n - 1 for n in ids.values()) == first.duplicates == 10_000 - first.distinct
    assert 1_950 <= first.duplicates <= 2_000  # 20 %, less a few whole groups' overshoot
    assert set(first.by_type) == {
        "checkout.session.completed",
        "payment_intent.succeeded",
        "invoice.paid",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.closed",
    }
    statuses = Counter(
        json.loads(p)["data"]["object"].get("status")
        for _, p in first.deliveries
        if json.loads(p)["type"] == "charge.dispute.closed"
    )
    assert statuses["won"] > 0 and statuses["lost"] > 0
    assert {c.currency for c in first.campaigns} == {"USD", "JPY"}
    for campaign in first.campaigns:
        assert len(campaign.tiers_crossed()) == 3  # several tiers, the top one not reached
        assert campaign.tiers[-1] * campaign.unit > campaign.raised
    # Shuffled: the payments do not all come before their refunds.
    kinds = [json.loads(p)["type"] for _, p in first.deliveries[:500]]
    assert "charge.refunded" in kinds


def test_the_client_folds_payments_refunds_and_disputes_as_stripe_means_them() -> None:
    meta = {"tracker_campaign": "c"}
    events = [
        # One payment reported twice, refunded 300 then 700 cumulatively (arriving late).
        checkout_session(meta=meta, amount=5000, payment_intent="pi_x_1"),
        payment_intent(meta=meta, amount=5000, intent_id="pi_x_1", charge_id="ch_x_1"),
        charge(charge_id="ch_x_1", intent_id="pi_x_1", amount=5000, refunded=700),
        charge(charge_id="ch_x_1", intent_id="pi_x_1", amount=5000, refunded=300),
        # Lost dispute: the money is gone.
        payment_intent(meta=meta, amount=2000, intent_id="pi_x_2", charge_id="ch_x_2"),
        dispute(dispute_id="dp_x_2", charge_id="ch_x_2", intent_id="pi_x_2",
                status="needs_response", amount=2000),
        dispute(dispute_id="dp_x_2", charge_id="ch_x_2", intent_id="pi_x_2",
                status="lost", amount=2000),
        # Won dispute: withdrawn, then given back.
        payment_intent(meta=meta, amount=1000, intent_id="pi_x_3", charge_id="ch_x_3"),
        dispute(dispute_id="dp_x_3", charge_id="ch_x_3", intent_id="pi_x_3",
                status="won", amount=1000),
        # Still open: withdrawn.
        payment_intent(meta=meta, amount=400, intent_id="pi_x_4", charge_id="ch_x_4"),
        dispute(dispute_id="dp_x_4", charge_id="ch_x_4", intent_id="pi_x_4",
                status="needs_response", amount=400),
        invoice(meta=meta, subscription="sub_x", amount=900, invoice_id="in_x_5"),
    ]  # fmt: skip
    types = {
        "checkout.session": "checkout.session.completed",
        "payment_intent": "payment_intent.succeeded",
        "charge": "charge.refunded",
        "invoice": "invoice.paid",
    }
    deliveries = []
    for n, obj in enumerate(events):
        kind = types.get(obj["object"]) or (
            "charge.dispute.closed"
            if obj["status"] in ("won", "lost")
            else "charge.dispute.created"
        )
        deliveries.append((f"evt_{n}", event(kind, obj, event_id=f"evt_{n}")))
    raised, payments = _fold(deliveries, ["c"])
    assert payments == {"c": 5}
    assert raised == {"c": (5000 - 700) + 0 + 1000 + 0 + 900}
    per_payment = expected_by_payment(deliveries + deliveries[:3])  # duplicates ignored
    assert per_payment == {"1": 4300, "2": 0, "3": 1000, "4": 0, "5": 900}
