"""The ledger's pure rules: signs, and the fold that totals are defined by."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.ledger import Entry, EntryKind, EntrySource, LedgerError, fold, signed


@pytest.mark.parametrize(
    ("kind", "signed_amount"),
    [
        (EntryKind.PAYMENT, 500),
        (EntryKind.DISPUTE_WON, 500),
        (EntryKind.CORRECTION_PLUS, 500),
        (EntryKind.CORRECTION_MINUS, -500),
        (EntryKind.REFUND, -500),
        (EntryKind.DISPUTE_LOST, -500),
    ],
)
def test_sign_follows_kind(kind: EntryKind, signed_amount: int) -> None:
    assert signed(kind, 500) == signed_amount


@pytest.mark.parametrize("bad", [0, -5, True, 1.5])
def test_amounts_are_positive_magnitudes(bad: int) -> None:
    with pytest.raises(LedgerError):
        signed(EntryKind.PAYMENT, bad)


ENTRIES = st.lists(
    st.builds(
        lambda ref, kind, amount, period, donor: Entry(
            EntrySource.STRIPE, f"ref-{ref}", kind, signed(kind, amount), period, donor
        ),
        st.integers(0, 30),
        st.sampled_from(list(EntryKind)),
        st.integers(1, 10**6),
        st.sampled_from(["2026-10", "2026-11"]),
        st.sampled_from([None, "a", "b", "c"]),
    ),
    max_size=40,
)


def _snapshot(entries: list[Entry]) -> dict[str, tuple[int, int, int]]:
    return {k: (v.raised, v.payments, len(v.donors)) for k, v in fold(entries).items()}


@given(entries=ENTRIES, data=st.data())
def test_totals_do_not_depend_on_order_or_repeats(
    entries: list[Entry], data: st.DataObject
) -> None:
    # Only distinct references are meaningful: a reference names one movement.
    distinct = list({(e.source, e.reference): e for e in reversed(entries)}.values())
    replayed = data.draw(st.lists(st.sampled_from(distinct), max_size=60)) if distinct else []
    shuffled = data.draw(st.permutations(distinct + replayed))
    assert _snapshot(shuffled) == _snapshot(distinct)
    assert sum(t.raised for t in fold(shuffled).values()) == sum(e.amount for e in distinct)
