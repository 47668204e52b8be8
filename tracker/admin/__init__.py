"""The admin back office: ``/admin`` (sign-in, figures, ledger, offline money, corrections).

See docs/admin.md for roles, pages and how corrections work.
"""

from __future__ import annotations

from flask import Flask

from tracker.admin.blueprint import bp

__all__ = ["bp", "init_app"]


def init_app(app: Flask) -> None:
    """Register the admin blueprint, its sign-in and its pages (after ``donate.init_app``)."""
    from tracker.admin import (  # noqa: F401 -- their routes attach to bp
        actions,
        auth,
        campaign_forms,
        outbox,
        pages,
        privacy,
        records,
    )

    auth.init_app(app)
    app.register_blueprint(bp)
