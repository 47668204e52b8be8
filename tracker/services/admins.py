"""Admin accounts: create, reset, list, remove, and check a password at sign-in.

Passwords are hashed with Argon2id through argon2-cffi (the winner of the
Password Hashing Competition, memory-hard, with its parameters stored in each
hash so they can be raised later: ``check_password`` rehashes on sign-in when
they change). See docs/admin.md.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.models import AdminRole, AdminUser, utcnow
from tracker.services.audit import audit

MIN_PASSWORD = 12
MAX_PASSWORD = 1024

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verified against when the e-mail is unknown, so both failures cost one Argon2
    # run. Made on first use, not at import: an Argon2 run is about 0.2 s of CPU,
    # which every process importing this (each gunicorn worker, CLI command and
    # scheduler) paid at start-up whether or not anyone signed in.
    return _hasher.hash(secrets.token_urlsafe(16))


class AdminError(ValueError):
    """An account that cannot be created or changed as asked; ``str()`` is the message."""


@dataclass(frozen=True, slots=True)
class AdminSaved:
    """What :func:`save_admin` did: ``created`` is False when an existing admin was reset."""

    admin: AdminUser
    created: bool


def normalize_email(email: str) -> str:
    """The address as stored: syntax-checked, lower-cased.

    :raise AdminError: if it is not an e-mail address.
    """
    try:
        checked = validate_email((email or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AdminError(f"{email!r} is not an e-mail address: {exc}") from None
    return str(checked.normalized).lower()


def check_password_rules(password: str) -> None:
    """Refuse a password shorter than 12 characters (or absurdly long).

    :raise AdminError: with the reason.
    """
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AdminError(f"the password may have at most {MAX_PASSWORD} characters")


def find_admin(session: Session, email: str) -> AdminUser | None:
    """The admin with ``email`` (any case), or None."""
    return session.scalar(select(AdminUser).where(AdminUser.email == email.strip().lower()))


def save_admin(
    session: Session,
    email: str,
    password: str,
    *,
    role: AdminRole | None,
    actor: str,
    address: str | None = None,
) -> AdminSaved:
    """Create an admin, or give an existing one a new password. Flushes; the caller commits.

    A reset also gives the admin a new session nonce: every session signed in
    before is then refused (signed out everywhere). ``role=None`` keeps an
    existing admin's role (a new one becomes an owner).

    :raise AdminError: for a bad address or a password that breaks the rules.
    """
    address_ = normalize_email(email)
    check_password_rules(password)
    now = utcnow()
    admin = find_admin(session, address_)
    created = admin is None
    if admin is None:
        admin = AdminUser(
            email=address_,
            role=role or AdminRole.OWNER,
            created_at=now,
            password_hash="",
            session_nonce="",
        )
        session.add(admin)
    elif role is not None:
        admin.role = role
    admin.password_hash = _hasher.hash(password)
    admin.session_nonce = secrets.token_urlsafe(24)
    admin.updated_at = now
    session.flush()
    audit(
        session,
        actor=actor,
        action="admin_created" if created else "admin_password_reset",
        details={"admin": address_, "role": admin.role.value},
        address=address,
    )
    return AdminSaved(admin, created)


def list_admins(session: Session) -> list[AdminUser]:
    """Every admin, by e-mail."""
    return list(session.scalars(select(AdminUser).order_by(AdminUser.email)))


def remove_admin(session: Session, email: str, *, actor: str) -> None:
    """Delete the admin with ``email``; their sessions end with the row. The caller commits.

    :raise AdminError: if there is no such admin.
    """
    admin = find_admin(session, email)
    if admin is None:
        raise AdminError(f"no admin {email.strip()!r}")
    session.delete(admin)
    session.flush()
    audit(session, actor=actor, action="admin_removed", details={"admin": admin.email})


def check_password(
    session: Session, email: str, password: str, *, now: datetime | None = None
) -> AdminUser | None:
    """The admin whose e-mail and password these are, or None. Flushes; the caller commits.

    An unknown e-mail is verified against a dummy hash, so it takes as long as
    a wrong password and the two cannot be told apart by timing.
    """
    # Before the lookup, known e-mail or not: the first check in a process, which
    # makes the dummy hash, then costs the same either way.
    dummy = _dummy_hash()
    admin = find_admin(session, email) if len(email) <= 320 else None
    try:
        _hasher.verify(admin.password_hash if admin else dummy, password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if admin is None:
        return None
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    admin.last_sign_in_at = now or utcnow()
    session.flush()
    return admin
