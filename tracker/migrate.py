"""Bringing a database to the newest schema with Alembic (what ``init-db`` runs)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

_HERE = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every process of this app.
_LOCK_ID = 0x7472_6163_6B65_72


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    return cfg


def upgrade(
    engine: Engine, *, donor_key_secret: bytes | None = None, revision: str = "head"
) -> tuple[str | None, str]:
    """Migrate to the newest revision; safe to run again and from several hosts at once.

    On PostgreSQL an advisory lock makes concurrent runs wait for each other.

    :param donor_key_secret: the app's (:func:`tracker.config.donor_key_secret`); revision
        0008 needs it to hash the donor keys of an existing ledger, not for an empty one.
    :param revision: where to stop (tests build an old schema with it); default the newest.
    :return: the revision before and after.
    """
    cfg = _config()
    head = revision
    if revision == "head":
        head = ScriptDirectory.from_config(cfg).get_current_head() or ""
    if donor_key_secret is not None:
        cfg.attributes["donor_key_secret"] = donor_key_secret
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
            conn.commit()
        try:
            before = MigrationContext.configure(conn).get_current_revision()
            conn.commit()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                conn.commit()
    return before, head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()
