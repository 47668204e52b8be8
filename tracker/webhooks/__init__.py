"""Stripe's webhook endpoint: ``POST /webhooks/stripe``."""
