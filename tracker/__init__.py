"""tracker: a self-hosted crowdfunding donation tracker."""

from __future__ import annotations

from typing import Any

from flask import Flask

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the application: read and check configuration, wire the database, blueprints, CLI.

    Nothing is read from the environment or the database before this is called.

    :param test_config: values that override the ``TRACKER_*`` environment.
    :raise tracker.config.ConfigError: for an invalid configuration value.
    """
    from pathlib import Path

    from tracker import admin, cli, config, db, donate, gateway, i18n, ops, web
    from tracker.api import blueprint as api
    from tracker.embed import blueprint as embed
    from tracker.webhooks import blueprint as webhooks

    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(root / "templates"),
        static_folder=None,
    )
    config.load(app, test_config)
    # No request of ours needs more (Stripe events are kilobytes); this also bounds
    # bodies sent without a Content-Length (chunked), which a header check misses.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies
        )
    db.init_app(
        app,
        db.Database(app.config["DATABASE_URL"], donor_key_secret=config.donor_key_secret(app)),
    )
    gateway.init_app(app)
    i18n.init_app(app)
    web.init_app(app)
    ops.init_app(app)
    app.register_blueprint(api.bp)
    donate.init_app(app)
    admin.init_app(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(embed.bp)
    cli.init_app(app)
    return app
