"""Outgoing messages: the outbox, its channels (SMTP, chat webhooks) and the message builders."""
