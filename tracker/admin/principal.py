"""Who is signed in: a small value object for Flask-Login, rebuilt from the database per request.

The session cookie stores ``<admin id>:<session nonce>``. A new password or a
removal changes or deletes the nonce, so every session signed in before ends
at its next request (signed out everywhere).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask_login import UserMixin

from tracker.db import get_session
from tracker.models import AdminRole, AdminUser


@dataclass(frozen=True, slots=True)
class Principal(UserMixin):
    """A signed-in admin: id, e-mail, role, and the nonce their session carries."""

    admin_id: int
    email: str
    role: AdminRole
    nonce: str

    def get_id(self) -> str:
        """The identity Flask-Login keeps in the session."""
        return f"{self.admin_id}:{self.nonce}"

    @property
    def is_owner(self) -> bool:
        """Owners change things; viewers only read."""
        return self.role is AdminRole.OWNER

    @property
    def actor(self) -> str:
        """How the audit trail names this admin."""
        return f"admin:{self.email}"

    @classmethod
    def of(cls, admin: AdminUser) -> Principal:
        """The principal of a database row."""
        return cls(admin.id, admin.email, admin.role, admin.session_nonce)


def load_principal(identity: str) -> Principal | None:
    """Flask-Login's user loader: the admin of a session identity, if its nonce still holds."""
    ident, _, nonce = identity.partition(":")
    if not ident.isdigit() or not nonce:
        return None
    admin = get_session().get(AdminUser, int(ident))
    if admin is None or not hmac.compare_digest(admin.session_nonce, nonce):
        return None
    return Principal.of(admin)
