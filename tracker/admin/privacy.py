"""Erasing a donor from the admin: owners only, through the same service as ``erase-donor``.

The address travels in POST bodies only (never a URL, a flash message or a
log line): ``erase_donor`` audits the erasure itself, with counts and no
personal data.
"""

from __future__ import annotations

from flask import abort, render_template
from flask_login import current_user

from tracker.admin.blueprint import bp
from tracker.admin.forms import ErasureForm
from tracker.db import get_session
from tracker.services.privacy import ErasureError, erase_donor

_ADDRESS = "give the donor's e-mail address, such as ada@example.org"


def _owner() -> None:
    # POSTs are refused to viewers by the blueprint; the form itself is owners' too.
    if not current_user.is_owner:
        abort(403, "only owners erase donors")


def _checked(form: ErasureForm) -> bool:
    if form.validate():
        return True
    form.email.errors = [_ADDRESS]
    return False


@bp.route("/privacy/erase", methods=["GET", "POST"])
def erase() -> str | tuple[str, int]:
    """The erasure form; a valid POST shows the confirmation step (nothing erased yet).

    :raise 403: for a viewer.
    """
    _owner()
    form = ErasureForm()
    if not form.is_submitted():
        return render_template("admin/erase.html", form=form)
    if not _checked(form):
        return render_template("admin/erase.html", form=form), 400
    return render_template("admin/erase_confirm.html", form=form)


@bp.post("/privacy/erase/confirm")
def erase_confirm() -> str | tuple[str, int]:
    """Erase the donor once and commit once; show what was scrubbed, table by table.

    :raise 403: for a viewer.
    """
    _owner()
    form = ErasureForm()
    if not _checked(form):
        return render_template("admin/erase.html", form=form), 400
    db = get_session()
    try:
        report = erase_donor(db, form.email.data or "", actor=current_user.actor)
    except ErasureError as exc:
        db.rollback()
        form.email.errors = [str(exc)]
        return render_template("admin/erase.html", form=form), 400
    db.commit()
    return render_template("admin/erase_done.html", report=report)
