"""Which names the web server answers to: the defence against DNS rebinding.

A page of another site can make its own name resolve to the robot's address (DNS rebinding):
the browser then treats the robot as that site, sends it the name in `Host` and the same name
in `Origin`, and the Origin check alone lets it act on the robot. Like Jupyter's server, the
web server therefore answers only to names that cannot be rebound by someone else: an IP
literal (v4 or v6, any address: rebinding needs a DNS name), `localhost` and `*.localhost`
(browsers resolve them to loopback themselves), the machine's own host name and
`<hostname>.local` (mDNS, as robots are often reached), and the names of the `allowed_hosts`
parameter (`*`: any name, which gives up the defence). Pure logic: no aiohttp here.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from passeur.telepresence.exceptions import TelepresenceConfigError

#: allowed_hosts entry that allows any name (unsafe: DNS rebinding is possible again).
ANY_HOST = "*"
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def host_name(host_header: str) -> str | None:
    """The name part of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`), lower case,
    without a trailing dot (`localhost.` is `localhost`); None when it is malformed."""
    text = host_header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        name, rest = text[1:end], text[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name if _is_ip(name) else None  # brackets hold an IPv6 address, nothing else
    if text.count(":") == 1:
        text, port = text.split(":")
        if not port.isdigit():
            return None
    elif ":" in text:  # an unbracketed IPv6 address (not HTTP, but tools send it)
        return text if _is_ip(text) else None
    text = text.removesuffix(".")
    return text or None


def _is_ip(name: str) -> bool:
    try:
        # A zone id arrives percent-encoded in a URL (fe80::1%25eth0).
        ipaddress.ip_address(name.replace("%25", "%"))
    except ValueError:
        return False
    return True


def machine_names(hostname: str | None = None) -> frozenset[str]:
    """The machine's own names: its host name (and its first label when that is a full
    name), and `<first label>.local` (mDNS)."""
    name = (socket.gethostname() if hostname is None else hostname).strip().lower()
    name = name.removesuffix(".")
    if not name:
        return frozenset()
    short = name.split(".", 1)[0]
    return frozenset({name, short, f"{short}.local"})


def _ascii_name(name: str) -> str:
    """A name with accents (`robot.médiathèque.fr`) as browsers send it in Host: IDNA
    (`robot.xn--mdiathque-53af.fr`); the name unchanged when it is ASCII or not a name."""
    if name.isascii():
        return name
    try:
        # The standard library's IDNA 2003; browsers use UTS #46, which gives the same
        # result for accented Latin letters (not for 'ß': the refusal page shows their form).
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name  # refused below, as any other malformed name


def validate_allowed_hosts(names: Iterable[str]) -> tuple[str, ...]:
    """The `allowed_hosts` entries, stripped, lower case and in ASCII (a name with accents in
    its IDNA form, as browsers send it); a clear error for one that is not a host name (a URL,
    a name with a port, a pattern other than `*`)."""
    out = []
    for raw in names:
        name = _ascii_name(raw.strip().lower().removesuffix("."))
        if not name:
            continue
        if name != ANY_HOST and not _is_ip(name) and not _HOST_NAME.match(name):
            raise TelepresenceConfigError(
                f"allowed_hosts: '{raw}' is not a host name; give the name alone, without "
                "scheme, port or path (e.g. robot.example.org), or '*' for any name (unsafe)")
        out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class HostPolicy:
    """The names the server answers to, besides IP literals and localhost."""

    names: frozenset[str] = frozenset()
    allow_any: bool = False

    @classmethod
    def from_config(cls, allowed_hosts: Iterable[str],
                    hostname: str | None = None) -> HostPolicy:
        """`allowed_hosts` (validated) plus this machine's names (`hostname` for tests)."""
        allowed = validate_allowed_hosts(allowed_hosts)
        return cls(frozenset(a for a in allowed if a != ANY_HOST) | machine_names(hostname),
                   ANY_HOST in allowed)

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this Host header is answered. No header at all is an
        HTTP/1.0 tool, never a browser (which always sends one): answered."""
        if host_header is None or self.allow_any:
            return True
        name = host_name(host_header)
        if name is None:
            return False
        return _is_ip(name) or name == "localhost" or name.endswith(".localhost") \
            or name in self.names


def refusal_text(host_header: str) -> str:
    """The 403 page for a refused Host: the name, and the parameter to set (French, English).
    Served as text/plain (nosniff): the name, whatever it holds, is never markup."""
    shown = "".join(c for c in host_header if c.isprintable())[:100]
    return (f"Accès refusé : ce robot ne répond pas au nom « {shown} ».\n"
            "Si c'est bien son adresse, ajoutez ce nom au paramètre allowed_hosts du nœud "
            "telepresence (config/passeur.yaml), puis redémarrez.\n\n"
            f"Refused: this robot does not answer to the name '{shown}'.\n"
            "If that is its address, add the name to the telepresence node's allowed_hosts "
            "parameter (config/passeur.yaml), then restart.\n")
