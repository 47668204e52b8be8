"""Chat webhooks (Slack ``{"text"}``, Discord ``{"content"}``), refused inside our network.

A campaign owner's URL must not become a way to make the server call the host's
own network: the URL must be https, and every address its host resolves to
must be public. The connection goes to the address that was checked (not a
second lookup), so a DNS answer that changes in between cannot slip through.
Tests may allow plain http to loopback (``TRACKER_NOTIFY_ALLOW_HTTP_LOOPBACK``);
``TRACKER_NOTIFY_ALLOW_PRIVATE`` allows private and link-local addresses.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit


class ChatError(RuntimeError):
    """The webhook failed or timed out; worth retrying later."""


class ChatUrlError(ValueError):
    """A webhook URL we refuse to call; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ChatPolicy:
    """Which webhook URLs may be called."""

    allow_http_loopback: bool = False
    allow_private: bool = False


def _flavour(host: str) -> str:
    return (
        "content"
        if host in ("discord.com", "discordapp.com")
        or host.endswith((".discord.com", ".discordapp.com"))
        else "text"
    )


def payload(url: str, text: str) -> bytes:
    """The JSON body for ``url``: Discord wants ``content``, Slack and its clones ``text``."""
    host = (urlsplit(url).hostname or "").lower()
    return json.dumps({_flavour(host): text}).encode()


def check_url(url: str, policy: ChatPolicy) -> str:
    """Check the form of a webhook URL (scheme, host, no credentials); return it stripped.

    :raise ChatUrlError: for anything else than https (or http to loopback when allowed).
    """
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- urlsplit checks the port lazily
    except ValueError:
        raise ChatUrlError("not a URL") from None
    if len(text) > 500 or not parts.hostname or parts.username or parts.password:
        raise ChatUrlError("expected https://host/path (at most 500 characters, no credentials)")
    if parts.scheme == "https" or (
        parts.scheme == "http" and policy.allow_http_loopback and _is_loopback_name(parts.hostname)
    ):
        pass
    else:
        raise ChatUrlError("chat webhooks must be https:// URLs")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return text
    _check_address(literal, policy)
    return text


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: ChatPolicy
) -> None:
    if address.is_loopback:
        if policy.allow_http_loopback or policy.allow_private:
            return
        raise ChatUrlError("the webhook's host is this machine")
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        raise ChatUrlError("the webhook's host is not a public address")
    if (address.is_private or address.is_link_local) and not policy.allow_private:
        raise ChatUrlError("the webhook's host is a private or link-local address")


def _resolve(host: str, port: int, policy: ChatPolicy) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ChatError(f"cannot resolve {host}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        _check_address(ipaddress.ip_address(address.split("%")[0]), policy)
    return str(addresses[0])


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class ChatSender:
    """Posts a message to a webhook URL, within ``timeout`` seconds per step."""

    def __init__(self, policy: ChatPolicy, timeout: float) -> None:
        self.policy = policy
        self.timeout = timeout

    def send(self, url: str, text: str) -> None:
        """Post ``text`` to ``url``.

        :raise ChatUrlError: when the URL or the address it resolves to is refused.
        :raise ChatError: when the call fails, times out or answers other than 2xx.
        """
        check_url(url, self.policy)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _resolve(host, port, self.policy)
        kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        connection = kind(host, address, port, self.timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(
                "POST",
                path,
                body=payload(url, text),
                headers={"Content-Type": "application/json", "User-Agent": "tracker"},
            )
            response = connection.getresponse()
            response.read(4096)
        except (OSError, http.client.HTTPException) as exc:
            raise ChatError(f"webhook {host}: {type(exc).__name__}: {exc}") from None
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise ChatError(f"webhook {host} answered {response.status}")
