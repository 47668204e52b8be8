"""Pure rules for turning Stripe's reports into ledger movements.

Stripe delivers events at least once and in any order. These rules make the
outcome depend only on *what* was reported, never on the order or the number
of deliveries: refunds book the growth of a high-water mark, disputes are
decided by their state, and pledges only move forward.
"""

from __future__ import annotations

from dataclasses import dataclass

# Dispute states in which Stripe has taken the money from the balance. The
# ``warning_*`` states are inquiries: nothing is withdrawn for them.
_WITHDRAWN_STATES = frozenset({"needs_response", "under_review", "won", "lost"})

# Pledge states (values of ``tracker.models.PledgeStatus``) a pledge may move
# *from* to reach each target. A payment always wins: money that arrived after a
# failed attempt is real, and nothing moves a paid pledge back to failed.
PLEDGE_MOVES_FROM: dict[str, frozenset[str]] = {
    "paid": frozenset({"pending", "failed", "expired"}),
    "failed": frozenset({"pending"}),
    "expired": frozenset({"pending"}),
    "canceled": frozenset({"pending", "paid"}),
}


def refund_increment(booked: int, reported: int) -> int:
    """How much refund to book now, given the cumulative amounts booked and reported.

    Stripe's ``charge.amount_refunded`` is cumulative. Keeping the highest value
    booked and booking only the growth makes replays, duplicates and late
    (smaller) reports change nothing.

    :param booked: the highest cumulative refunded amount already booked (minor units).
    :param reported: the cumulative ``amount_refunded`` in the event being applied.
    :return: the positive amount to book, or 0 when nothing is new.
    :raise ValueError: for a negative amount.
    """
    if booked < 0 or reported < 0:
        raise ValueError("refunded amounts cannot be negative")
    return max(reported - booked, 0)


@dataclass(frozen=True, slots=True)
class DisputeEffects:
    """Which of a dispute's two possible movements must exist on the ledger."""

    withdrawn: bool
    reinstated: bool


def dispute_effects(status: str, event_type: str) -> DisputeEffects:
    """The ledger movements a dispute in ``status`` implies, whatever came before.

    Each movement is keyed by the dispute id, so asserting "this movement exists"
    again is harmless. A won dispute implies both the withdrawal and the
    reinstatement, so a ``closed`` (won) event arriving before ``created`` nets to
    zero at once, and the late ``created`` changes nothing.

    :param status: the dispute object's ``status`` as reported in the event.
    :param event_type: the event type (``charge.dispute.funds_reinstated`` implies
        a reinstatement even if the status was not yet updated).
    :return: whether a withdrawal and whether a reinstatement must be booked.
    """
    reinstated = status == "won" or event_type == "charge.dispute.funds_reinstated"
    withdrawn = (
        reinstated or status in _WITHDRAWN_STATES or event_type == "charge.dispute.funds_withdrawn"
    )
    return DisputeEffects(withdrawn=withdrawn, reinstated=reinstated)


def pledge_may_move(current: str, target: str) -> bool:
    """Whether a pledge in state ``current`` may move to ``target`` (values of PledgeStatus).

    :return: False for a move that would lose information (paid → failed) or a no-op.
    """
    return current in PLEDGE_MOVES_FROM.get(target, frozenset())
