"""What message builders need from the configuration: the sender and the public URL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Context:
    """``TRACKER_MAIL_FROM`` and ``TRACKER_PUBLIC_URL`` (links are paths without it)."""

    mail_from: str | None = None
    public_url: str | None = None

    def url(self, path: str) -> str:
        """An absolute link when the public URL is known, else the path."""
        return f"{self.public_url or ''}{path}"
