"""Two app hosts as Linux network namespaces on a bridge of their own.

The test's "machines": each host is a network namespace with one veth pair
whose outer end is enslaved to a bridge in the root namespace. The bridge
carries the hub address, where the shared services (PostgreSQL, Redis, the
SMTP sink) listen; nginx runs in the root namespace and reaches the hosts at
their own addresses. Every address is in a /24 of 10.0.0.0/8 that no route of
this machine uses, so nothing leaves the namespaces and links made here.

Without root (or without ``ip``) the hosts fall back to loopback: the same
processes, one network, and a visible reason. Under ``CI=true`` that fallback
is refused: CI runs as root and must test the real network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


class NetworkError(RuntimeError):
    """The namespaces or links could not be made; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Host:
    """One app host: where its processes run and listen, and the link that feeds it."""

    name: str
    address: str
    netns: str | None = None
    # The root-namespace end of the host's veth pair: taking it down cuts the host off.
    link: str | None = None

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the host's namespace (``ip netns exec`` execs it: same pid)."""
        if self.netns is None:
            return list(argv)
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass(slots=True)
class Network:
    """The hub address (shared services), the hosts, and how they are connected."""

    hub: str
    hosts: list[Host]
    isolated: bool
    reason: str = ""
    subnet: str = "127.0.0.0/8"
    _undo: list[list[str]] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the test's report."""
        if self.isolated:
            hosts = ", ".join(f"{h.name}={h.address} (netns {h.netns})" for h in self.hosts)
            return f"network namespaces on bridge {self.subnet}: hub {self.hub}; {hosts}"
        return f"loopback fallback ({self.reason}): every host on {self.hub}"

    def set_link(self, host: Host, up: bool) -> None:
        """Bring the host's link up or down (namespaces only).

        :raise NetworkError: on the loopback fallback, which has no link to cut.
        """
        if host.link is None:
            raise NetworkError("the loopback fallback has no link to take down")
        _ip("link", "set", host.link, "up" if up else "down")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can).

    ``CLUSTER_LOOPBACK=1`` asks for the loopback fallback even as root.
    """
    if os.environ.get("CLUSTER_LOOPBACK"):
        return "CLUSTER_LOOPBACK is set"
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "not Linux"
    if os.geteuid() != 0:
        return "not root (ip netns needs CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "ip (Debian: iproute2) is not installed"
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that overlaps no route of this machine."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=False
    ).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unicast"):
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    for _ in range(200):
        candidate = ipaddress.ip_network(
            f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(250) + 1}.0/24"
        )
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return candidate
    raise NetworkError("no free /24 in 10.0.0.0/8")


@contextlib.contextmanager
def network(count: int = 2, *, require: bool = False) -> Iterator[Network]:
    """``count`` hosts in namespaces on a private bridge (or loopback, with a reason).

    Everything made is removed when the block ends, on failure and Ctrl-C too:
    deleting a namespace deletes its veth end and with it the pair.

    :param require: refuse the loopback fallback (CI).
    :raise NetworkError: when namespaces are required but cannot be made.
    """
    reason = namespaces_unavailable()
    if reason is not None:
        if require:
            raise NetworkError(f"network namespaces are required under CI=true: {reason}")
        yield Network(
            hub="127.0.0.1",
            hosts=[Host(chr(ord("a") + i), "127.0.0.1") for i in range(count)],
            isolated=False,
            reason=reason,
        )
        return
    tag = secrets.token_hex(3)
    subnet = _free_subnet()
    addresses = list(subnet.hosts())
    bridge = f"trkbr{tag}"
    net = Network(hub=str(addresses[0]), hosts=[], isolated=True, subnet=str(subnet))
    try:
        _ip("link", "add", bridge, "type", "bridge")
        net._undo.append(["link", "del", bridge])
        _ip("addr", "add", f"{addresses[0]}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(count):
            name = chr(ord("a") + i)
            netns = f"trk{tag}{name}"
            outer, inner = f"trk{tag}{name}o", f"trk{tag}{name}i"
            _ip("netns", "add", netns)
            net._undo.append(["netns", "del", netns])
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            net._undo.append(["link", "del", outer])
            _ip("link", "set", inner, "netns", netns)
            _ip("link", "set", outer, "master", bridge)
            _ip("link", "set", outer, "up")
            address = str(addresses[10 + i])
            for args in (
                ("addr", "add", f"{address}/24", "dev", inner),
                ("link", "set", inner, "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("-n", netns, *args)
            net.hosts.append(Host(name, address, netns=netns, link=outer))
        yield net
    finally:
        for args in reversed(net._undo):
            # Already gone with its namespace (veth pairs) or never made: fine.
            subprocess.run(["ip", *args], capture_output=True, check=False)
