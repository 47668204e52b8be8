"""The donor keys of a session's database: the pure hashing, with the secret it carries."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tracker.domain.donors import donor_key, named_donor_key

# Where a session carries the secret: ``tracker.db.Database`` puts it there.
DONOR_SECRET_INFO = "tracker_donor_key_secret"


class NoDonorKeySecret(RuntimeError):
    """The session was made without a donor key secret (``Database(donor_key_secret=...)``)."""


def secret_of(session: Session) -> bytes:
    """The donor key secret the session's :class:`~tracker.db.Database` was given.

    :raise NoDonorKeySecret: when it has none; an e-mail is never stored in clear instead.
    """
    secret = session.info.get(DONOR_SECRET_INFO)
    if not isinstance(secret, bytes):
        raise NoDonorKeySecret("this database session has no donor key secret")
    return secret


def email_key(session: Session, email: str) -> str:
    """The donor key of ``email`` (see :func:`tracker.domain.donors.donor_key`)."""
    return donor_key(secret_of(session), email)


def name_key(session: Session, name: str) -> str:
    """The donor key of an offline donor known by name."""
    return named_donor_key(secret_of(session), name)
