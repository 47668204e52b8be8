"""Text cells that a spreadsheet will not run: CSV formula-injection neutralised (OWASP)."""

from __future__ import annotations

# A cell starting with one of these is a formula (or becomes one) in Excel,
# LibreOffice and Google Sheets.
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str | None) -> str:
    """``text`` prefixed with an apostrophe when a spreadsheet would read it as a formula."""
    if not text:
        return ""
    return "'" + text if text.startswith(_TRIGGERS) else text
