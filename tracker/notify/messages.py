"""Message builders: from facts gathered by the services to subject, text, HTML and chat text.

Pure: no database, no clock. Amounts arrive formatted for the campaign's locale.
The HTML is tables with inline styles (templates/mail/), which mail clients
render without images, SVG or style sheets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from tracker.i18n import catalog, language
from tracker.notify.outbox import Outgoing

_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "mail"
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Mark:
    """A tier under the bar."""

    label: str
    reached: bool


@dataclass(frozen=True, slots=True)
class Bar:
    """How much of the bar is filled (0-100, whole percent, rounded down) and its marks."""

    filled: int
    marks: tuple[Mark, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """A titled block of lines."""

    title: str | None
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Link:
    """A link at the bottom."""

    label: str
    href: str


@dataclass(frozen=True, slots=True)
class Body:
    """What a message says, before it becomes text and HTML."""

    subject: str
    heading: str
    headline: str | None
    bar: Bar | None
    sections: tuple[Section, ...]
    links: tuple[Link, ...] = field(default_factory=tuple)
    # The language of the words (the HTML part's ``lang``): donors get the campaign's.
    lang: str = "en"


def render_text(body: Body) -> str:
    """The plain-text part: the same content, with a bar of characters."""
    lines = [body.heading, "=" * min(len(body.heading), 72), ""]
    if body.headline:
        lines.append(body.headline)
    if body.bar:
        full = body.bar.filled * 30 // 100
        lines.append("[" + "#" * full + "-" * (30 - full) + f"] {body.bar.filled}%")
        lines.append(
            "  ".join(f"{m.label}{' (reached)' if m.reached else ''}" for m in body.bar.marks)
        )
    for section in body.sections:
        lines.append("")
        if section.title:
            lines.append(section.title)
            lines.append("-" * min(len(section.title), 72))
        lines.extend(section.lines)
    if body.links:
        lines.append("")
        lines.extend(f"{link.label}: {link.href}" for link in body.links)
    return "\n".join(lines).rstrip() + "\n"


def render_html(body: Body) -> str:
    """The HTML part (escaped: titles, names and messages are other people's text)."""
    return _env.get_template("message.html").render(
        subject=body.subject,
        lang=body.lang,
        heading=body.heading,
        headline=body.headline,
        bar=body.bar,
        sections=body.sections,
        links=body.links,
    )


def outgoing(key: str, kind: str, body: Body, chat: str) -> Outgoing:
    """An outbox message with both parts and the chat line."""
    return Outgoing(
        key=key,
        kind=kind,
        subject=body.subject,
        text=render_text(body),
        html=render_html(body),
        chat_text=chat,
    )


@dataclass(frozen=True, slots=True)
class TierFact:
    """A tier, formatted, with when it was reached (if known)."""

    label: str
    reached: bool
    reached_at: str | None


@dataclass(frozen=True, slots=True)
class Goal:
    """What is needed for one goal, formatted."""

    label: str
    remaining: str
    needed_per_day: str | None
    projected: str | None
    in_time: bool | None


@dataclass(frozen=True, slots=True)
class SummaryFacts:
    """Everything a progress summary says, formatted for the campaign's locale."""

    title: str
    raised: str
    top: str
    percent: int
    tiers: tuple[TierFact, ...]
    # No earlier summary of this period: the counts cover the whole period so far.
    first: bool
    period_label: str | None
    change: str | None
    payments: int
    donors: int
    refunds: int
    refunded: str | None
    disputes: int
    next_goal: Goal | None
    top_goal: Goal | None
    per_day: str
    days_left: int | None
    ends_label: str | None
    messages: tuple[tuple[str, str], ...]
    donate_url: str
    admin_url: str


def _goal_line(goal: Goal, ends: str | None) -> list[str]:
    lines = [f"{goal.remaining} to go to {goal.label}."]
    if goal.needed_per_day:
        lines.append(f"Needed from now on: {goal.needed_per_day} a day.")
    if goal.projected and goal.in_time is not False:
        lines.append(f"At this pace {goal.label} is reached on {goal.projected}.")
    elif goal.in_time is False:
        lines.append(f"At this pace {goal.label} is not reached before {ends or 'the end'}.")
    return lines


def summary(facts: SummaryFacts, key: str) -> Outgoing:
    """The progress summary: subject with the number, the bar, changes, pace, messages."""
    subject = f"{facts.title}: {facts.raised} of {facts.top} ({facts.percent}%)"
    since = []
    if facts.change is not None:
        since.append(f"Raised since the previous summary: {facts.change}.")
    since.append(f"{facts.payments} payment(s) from {facts.donors} donor(s).")
    if facts.refunds:
        since.append(f"{facts.refunds} refund(s), {facts.refunded}.")
    if facts.disputes:
        since.append(f"{facts.disputes} dispute(s).")
    tiers = tuple(
        f"{t.label}: reached{f' on {t.reached_at}' if t.reached_at else ''}"
        if t.reached
        else f"{t.label}: not yet"
        for t in facts.tiers
    )
    pace_lines = [f"Daily rate so far: {facts.per_day}."]
    if facts.days_left is not None:
        pace_lines.append(f"{facts.days_left} day(s) left until {facts.ends_label}.")
    if facts.next_goal:
        pace_lines += _goal_line(facts.next_goal, facts.ends_label)
    if facts.top_goal and facts.top_goal != facts.next_goal:
        pace_lines += _goal_line(facts.top_goal, facts.ends_label)
    if not facts.next_goal:
        pace_lines.append("Every tier is reached.")
    sections = [
        Section("So far" if facts.first else "Since the previous summary", tuple(since)),
        Section("Tiers", tiers),
        Section("Pace", tuple(pace_lines)),
    ]
    if facts.messages:
        sections.append(
            Section("Latest messages from donors", tuple(f"{n}: “{m}”" for n, m in facts.messages))
        )
    period = f" ({facts.period_label})" if facts.period_label else ""
    body = Body(
        subject=subject,
        heading=f"{facts.title}{period}",
        headline=f"{facts.raised} raised of {facts.top} ({facts.percent}%)",
        bar=Bar(min(facts.percent, 100), tuple(Mark(t.label, t.reached) for t in facts.tiers)),
        sections=tuple(sections),
        links=(Link("Donate page", facts.donate_url), Link("Admin", facts.admin_url)),
    )
    return outgoing(key, "summary", body, f"{subject} — {facts.donate_url}")


def milestone(
    *, title: str, tier: str, raised: str, top: str, percent: int, is_top: bool, key: str, url: str
) -> Outgoing:
    """The alert when a tier is reached; the top tier is "goal reached"."""
    if is_top:
        subject = f"{title}: goal reached — {raised} of {top}!"
        headline = f"The goal of {top} is reached: {raised} raised."
    else:
        subject = f"{title}: {tier} reached ({raised} of {top}, {percent}%)"
        headline = f"The {tier} tier is reached: {raised} raised of {top}."
    body = Body(
        subject=subject,
        heading=title,
        headline=headline,
        bar=Bar(min(percent, 100), ()),
        sections=(),
        links=(Link("Donate page", url),),
    )
    return outgoing(key, "milestone", body, subject)


def period_report(
    *,
    title: str,
    period_label: str,
    raised: str,
    donors: int,
    payments: int,
    tiers_reached: tuple[str, ...],
    previous: str | None,
    key: str,
) -> Outgoing:
    """The final report of a closed month or week, compared with the one before."""
    subject = f"{title}: {period_label} closed at {raised}"
    lines = [f"Raised: {raised} from {donors} donor(s), {payments} payment(s)."]
    lines.append("Tiers reached: " + (", ".join(tiers_reached) if tiers_reached else "none") + ".")
    if previous is not None:
        lines.append(f"The period before raised {previous}.")
    body = Body(subject, f"{title} — {period_label}", None, None, (Section(None, tuple(lines)),))
    return outgoing(key, "report", body, f"{subject}. " + " ".join(lines))


def drift_alert(*, title: str, lines: tuple[str, ...], key: str) -> Outgoing:
    """Totals that disagree with the ledger (check-totals found drift)."""
    subject = f"{title}: totals disagree with the ledger"
    explain = (
        "The daily check recomputed the totals from the ledger and found a difference. "
        "Nothing was changed; run `flask --app wsgi tracker check-totals` to see it and "
        "`--repair` to rewrite the totals from the ledger."
    )
    body = Body(subject, subject, None, None, (Section(None, (explain, *lines)),))
    return outgoing(key, "drift", body, f"{subject}: " + "; ".join(lines))


def offline_instructions(
    *,
    title: str,
    amount: str,
    pledge_id: int,
    instructions: str | None,
    key: str,
    url: str,
    locale: str | None = None,
) -> Outgoing:
    """What an offline pledger receives, in the campaign's language: how to pay, the reference."""
    _ = catalog(locale).gettext
    words = {"amount": amount, "title": title}
    subject = _("Your pledge of %(amount)s to %(title)s: how to pay") % words
    how = instructions or _("The organisers will write to you with the payment details.")
    lines = (
        _("Thank you for pledging %(amount)s to %(title)s.") % words,
        _("Nothing has been charged. To pay:"),
        *how.splitlines(),
        _("Please quote the reference: pledge %(number)s.") % {"number": pledge_id},
    )
    body = Body(
        subject, title, None, None, (Section(None, lines),), (Link(title, url),), language(locale)
    )
    return outgoing(key, "donor", body, subject)


def thank_you(
    *, title: str, amount: str, name: str | None, key: str, url: str, locale: str | None = None
) -> Outgoing:
    """The note after a booked payment (per campaign, off by default), in its language."""
    _ = catalog(locale).gettext
    words = {"amount": amount, "title": title}
    subject = _("Thank you for your gift to %(title)s") % words
    greeting = _("Dear %(name)s,") % {"name": name} if name else _("Hello,")
    lines = (greeting, _("your gift of %(amount)s to %(title)s has arrived. Thank you!") % words)
    body = Body(
        subject, title, None, None, (Section(None, lines),), (Link(title, url),), language(locale)
    )
    return outgoing(key, "thanks", body, subject)


def local_date(instant: datetime, zone: str, locale: str) -> str:
    """``24 December`` in the campaign's locale and timezone."""
    from zoneinfo import ZoneInfo

    from babel.dates import format_date

    return str(format_date(instant.astimezone(ZoneInfo(zone)).date(), "d MMMM", locale=locale))
