"""The pure rules behind Stripe accounting: refund high-water marks, disputes, pledge moves."""

from __future__ import annotations

import itertools

import pytest

from tracker.domain.stripe_rules import (
    DisputeEffects,
    dispute_effects,
    pledge_may_move,
    refund_increment,
)


@pytest.mark.parametrize(
    ("booked", "reported", "expected"),
    [
        (0, 0, 0),
        (0, 300, 300),
        (300, 500, 200),
        (500, 300, 0),  # a late, smaller report changes nothing
        (500, 500, 0),  # a replay changes nothing
        (0, 2500, 2500),
    ],
)
def test_refund_increment(booked: int, reported: int, expected: int) -> None:
    assert refund_increment(booked, reported) == expected


def test_refund_increment_refuses_negative_amounts() -> None:
    with pytest.raises(ValueError, match="negative"):
        refund_increment(-1, 0)


@pytest.mark.parametrize("reports", [[300, 500], [500, 300], [300, 300, 500, 500], [500]])
def test_refunds_in_any_order_book_the_highest(reports: list[int]) -> None:
    for order in itertools.permutations(reports):
        booked, total = 0, 0
        for reported in order:
            step = refund_increment(booked, reported)
            total += step
            booked = max(booked, reported)
        assert total == max(reports)


@pytest.mark.parametrize(
    ("status", "event_type", "withdrawn", "reinstated"),
    [
        ("warning_needs_response", "charge.dispute.created", False, False),
        ("warning_under_review", "charge.dispute.updated", False, False),
        ("warning_closed", "charge.dispute.closed", False, False),
        ("needs_response", "charge.dispute.created", True, False),
        ("under_review", "charge.dispute.updated", True, False),
        ("needs_response", "charge.dispute.funds_withdrawn", True, False),
        ("lost", "charge.dispute.closed", True, False),
        ("won", "charge.dispute.closed", True, True),
        ("under_review", "charge.dispute.funds_reinstated", True, True),
        ("won", "charge.dispute.funds_reinstated", True, True),
        ("prevented", "charge.dispute.closed", False, False),
    ],
)
def test_dispute_effects(status: str, event_type: str, withdrawn: bool, reinstated: bool) -> None:
    assert dispute_effects(status, event_type) == DisputeEffects(withdrawn, reinstated)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("pending", "paid", True),
        ("failed", "paid", True),
        ("expired", "paid", True),
        ("paid", "paid", False),
        ("paid", "failed", False),
        ("pending", "failed", True),
        ("pending", "expired", True),
        ("paid", "expired", False),
        ("paid", "canceled", True),
        ("pending", "canceled", True),
        ("canceled", "paid", False),
        ("failed", "canceled", False),
    ],
)
def test_pledge_moves(current: str, target: str, allowed: bool) -> None:
    assert pledge_may_move(current, target) is allowed
