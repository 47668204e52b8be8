"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""

from tracker import create_app
from tracker.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line instead of a traceback: the operator only needs the variable.
    raise SystemExit(f"tracker: configuration error: {exc}") from None
