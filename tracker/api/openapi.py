"""The OpenAPI 3.1 description of the public JSON API, served at ``/api/v1/openapi.json``.

Written by hand, next to the views it describes, because it *is* the contract
(DESIGN.md's "stable contract"): a change to a view that breaks it fails the
schemathesis run in ``tests/test_openapi.py``, which calls the live app with
examples generated from this document and checks every answer against it.
"""

from __future__ import annotations

import copy
from typing import Any

_ISO_INSTANT = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601 (`Z`)"}
_MINOR = {
    "type": "integer",
    "minimum": 0,
    "description": "minor units of the currency (cents; yen have none)",
}
_SIGNED_MINOR = {
    "type": "integer",
    "description": "minor units; below zero when refunds outweigh payments in a period",
}
_SLUG = {
    "name": "slug",
    "in": "path",
    "required": True,
    "description": "the campaign's slug: lower-case letters, digits and inner hyphens",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "examples": {"demo": {"summary": "the demo campaign of `make run`", "value": "demo"}},
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "an ETag from an earlier answer: 304 when the document has not changed",
    "schema": {"type": "string", "maxLength": 200},
}
_LOCALE = {
    "name": "locale",
    "in": "query",
    "required": False,
    "description": (
        "amounts and `texts` for this locale instead of the campaign's (e.g. `fr-FR`); "
        "words fall back to English where no catalog exists (docs/i18n.md)"
    ),
    "schema": {
        "type": "string",
        "pattern": "^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$",
        "maxLength": 40,
    },
}
_CACHE_HEADERS = {
    "ETag": {
        "description": "strong validator (the first 128 bits of the body's SHA-256)",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "`public, max-age=2, stale-while-revalidate=10`",
        "schema": {"type": "string"},
    },
    "Access-Control-Allow-Origin": {
        "description": "`*`: read-only public data, no credentials",
        "schema": {"type": "string", "const": "*"},
    },
}
_CORS_HEADER = {"Access-Control-Allow-Origin": _CACHE_HEADERS["Access-Control-Allow-Origin"]}
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ERROR_RESPONSE: dict[str, Any] = {"content": _ERROR_BODY, "headers": _CORS_HEADER}
_UNAVAILABLE: dict[str, Any] = {
    "description": "the database does not answer; retry after the given seconds",
    "content": _ERROR_BODY,
    "headers": {
        **_CORS_HEADER,
        "Retry-After": {"schema": {"type": "string"}, "description": "seconds"},
    },
}


def _ok(schema: str, description: str, *, bad_request: bool = False) -> dict[str, Any]:
    refused = {"400": {**_ERROR_RESPONSE, "description": "a malformed or repeated `locale`"}}
    return {
        **(refused if bad_request else {}),
        "200": {
            "description": description,
            "headers": _CACHE_HEADERS,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "304": {
            "description": "not modified (the `If-None-Match` ETag is current)",
            "headers": _CACHE_HEADERS,
        },
        "404": {**_ERROR_RESPONSE, "description": "no public campaign has this slug"},
        "503": _UNAVAILABLE,
    }


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


_PERIOD = _object(
    {
        "key": {"type": "string", "description": "e.g. `2026-11` or `2026-W47`"},
        "starts_at": _ISO_INSTANT,
        "ends_at": _ISO_INSTANT,
    }
)

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "a stable code, e.g. `not_found`"},
            "message": {"type": "string", "description": "for people; never echoes the input"},
        }
    ),
    "Tier": _object(
        {
            "amount": _MINOR,
            "label": {"type": "string", "description": "formatted for the campaign's locale"},
            "reached": {"type": "boolean"},
        }
    ),
    "Period": _PERIOD,
    "Progress": _object(
        {
            "slug": {"type": "string"},
            "title": {"type": "string"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "raised": _SIGNED_MINOR,
            "raised_display": {"type": "string"},
            "donors": {"type": "integer", "minimum": 0},
            "payments": {"type": "integer", "minimum": 0},
            "tiers": {"type": "array", "items": {"$ref": "#/components/schemas/Tier"}},
            "next_tier": {
                "oneOf": [
                    {"type": "null"},
                    _object({"amount": _MINOR, "remaining": _MINOR}),
                ],
                "description": "the first tier not reached yet; null once all are",
            },
            "percent": {
                "type": "number",
                "minimum": 0,
                "description": "of the top tier, 2 places, rounded down; over 100 when over-funded",
            },
            "period": {
                "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Period"}],
                "description": (
                    "the current period (a closed campaign's last one); "
                    "null for a campaign without periods"
                ),
            },
            "updated_at": {
                "oneOf": [{"type": "null"}, _ISO_INSTANT],
                "description": "when the total last moved; null before any money",
            },
            "closed": {
                "type": "boolean",
                "description": (
                    "true once the campaign is closed or past its end date: the figures are "
                    "final and the donate pages refuse pledges (409), so show no Donate"
                ),
            },
            "texts": _object(
                {
                    "lang": {
                        "type": "string",
                        "description": "language of these words: en, fr, de, es",
                    },
                    "summary": {"type": "string", "description": "e.g. `$2,811 raised of $5,000`"},
                    "value_text": {"type": "string", "description": "the bar's spoken description"},
                    "donors": {"type": "string", "description": "e.g. `5 donors`"},
                    "donate": {"type": "string", "description": "the donate button's word"},
                    "closed": {
                        "type": "string",
                        "description": "said instead of the button once `closed` is true",
                    },
                    "ended": {
                        "type": "string",
                        "description": (
                            "said beside the figures once `closed` is true, by a bar that "
                            "has no call to action row (e.g. `Ended`)"
                        ),
                    },
                },
                description="the widget's sentences in the campaign's (or `locale`'s) language",
            ),
        },
        description="A campaign's progress (the contract of docs/api.md).",
    ),
    "PeriodTotals": _object(
        {
            "key": {"type": "string"},
            "starts_at": _ISO_INSTANT,
            "ends_at": _ISO_INSTANT,
            "raised": _SIGNED_MINOR,
            "raised_display": {"type": "string"},
            "donors": {"type": "integer", "minimum": 0},
            "payments": {"type": "integer", "minimum": 0},
        }
    ),
    "PeriodHistory": _object(
        {
            "slug": {"type": "string"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "period": {"oneOf": [{"type": "null"}, {"enum": ["month", "week"]}]},
            "periods": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/PeriodTotals"},
                "description": "newest first; empty for a campaign without periods",
            },
        }
    ),
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh dict each call: callers may change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tracker public API",
            "version": "1",
            "description": (
                "Read-only progress of public campaigns, for widgets and other sites. "
                "No authentication, no cookies, CORS open. Amounts are integers in the "
                "currency's minor unit."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/api/v1/campaigns/{slug}": {
                "get": {
                    "operationId": "getCampaignProgress",
                    "summary": "A campaign's progress",
                    "parameters": [_SLUG, _LOCALE, _IF_NONE_MATCH],
                    "responses": _ok("Progress", "the campaign's progress", bad_request=True),
                }
            },
            "/api/v1/campaigns/{slug}/periods": {
                "get": {
                    "operationId": "getCampaignPeriods",
                    "summary": "Totals of every period of a campaign, newest first",
                    "parameters": [_SLUG, _IF_NONE_MATCH],
                    "responses": _ok("PeriodHistory", "the campaign's periods"),
                }
            },
        },
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }
