"""Signed links to one pledge, for its donor's thanks and cancel pages.

A pledge id alone would let anybody count up and read other donors' e-mail
addresses; the token is the id and the campaign signed with the app's secret
key (itsdangerous, as Flask's own sessions), valid for :data:`MAX_AGE`.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

_SALT = "tracker.donate.pledge"
# Stripe keeps a Checkout Session open for 24 hours; a week leaves room for a
# donor who comes back to the thanks page from their history later.
MAX_AGE = 7 * 24 * 3600
# Pledge ids are 32-bit integers on PostgreSQL. A token signed with our key can
# still name a larger one (a leaked key, an old install); comparing it with the
# column raised OverflowError in the driver, a 500. Such a token is no pledge's.
_MAX_PLEDGE_ID = 2**31 - 1


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=_SALT)


def pledge_token(slug: str, pledge_id: int) -> str:
    """A URL-safe token naming pledge ``pledge_id`` of campaign ``slug``.

    :param slug: the campaign's slug.
    :param pledge_id: the pledge's id.
    :returns: the signed, timestamped token.
    """
    return _serializer().dumps([slug, pledge_id])


def read_pledge_token(token: str | None, slug: str) -> int | None:
    """The pledge id in ``token`` if it is genuine, not expired and for campaign ``slug``.

    :param token: what the URL carried (may be missing or garbage).
    :param slug: the campaign the page is about.
    :returns: the pledge id, or ``None`` for any invalid token.
    """
    if not token:
        return None
    try:
        value = _serializer().loads(token, max_age=MAX_AGE)
    except BadSignature:  # also covers SignatureExpired
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and value[0] == slug
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
        and 0 < value[1] <= _MAX_PLEDGE_ID
    ):
        return value[1]
    return None
