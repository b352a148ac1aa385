"""The web server's Host check (DNS rebinding): which names the robot answers to."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passeur.telepresence.exceptions import TelepresenceConfigError
from passeur.telepresence.host_check import (
    HostPolicy,
    host_name,
    machine_names,
    refusal_text,
    validate_allowed_hosts,
)

POLICY = HostPolicy.from_config((), hostname="passeur-01")
PORTS = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))


@given(st.ip_addresses(), PORTS)
def test_any_ip_literal_is_answered(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                                    port: str) -> None:
    """Rebinding needs a DNS name: the robot reached by any address, as browsers write it."""
    host = f"[{address}]" if address.version == 6 else str(address)
    assert POLICY.allows(host + port)


@pytest.mark.parametrize("host", [
    "localhost", "localhost:8080", "LOCALHOST:8080", "localhost.", "robot.localhost:8080",
    "passeur-01", "passeur-01:8080", "Passeur-01.local", "passeur-01.local:443",
    "[::1]:8080", "[fe80::1%25eth0]:8080", "::1",
])
def test_local_names_are_answered(host: str) -> None:
    assert POLICY.allows(host)


@pytest.mark.parametrize("host", [
    "attacker.example", "attacker.example:8080", "passeur-01.attacker.example",
    "localhost.attacker.example", "passeur-01.local.attacker.example", "127.0.0.1.nip.io",
    "", ":8080", "localhost:http", "[attacker.example]:8080", "[::1", "[::1]x",
])
def test_other_names_are_refused(host: str) -> None:
    assert not POLICY.allows(host)


LABEL = r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?"


@given(st.from_regex(rf"{LABEL}(\.{LABEL}){{1,3}}", fullmatch=True), PORTS)
def test_a_dns_name_is_answered_only_once_allowed(name: str, port: str) -> None:
    if name.endswith(".localhost") or name == "passeur-01.local":
        return
    assert not POLICY.allows(name + port)
    assert HostPolicy.from_config([name.upper()], hostname="passeur-01").allows(name + port)
    assert HostPolicy.from_config(["*"], hostname="passeur-01").allows(name + port)


def test_no_host_header_is_a_tool_not_a_browser() -> None:
    assert POLICY.allows(None)


def test_the_machine_names_include_mdns() -> None:
    assert machine_names("Robot.Library.org.") == {"robot.library.org", "robot", "robot.local"}
    assert machine_names("") == frozenset()


@pytest.mark.parametrize("header, name", [
    ("Robot.Example:8080", "robot.example"), ("[::1]:80", "::1"), ("x.", "x"),
    ("x:y", None), ("[::1]:", None),
])
def test_host_name_of_a_header(header: str, name: str | None) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize("bad", ["http://robot.example", "robot.example:8080",
                                 "robot.example/pilot", "*.example.org", "robot example"])
def test_an_allowed_host_that_is_not_a_name_is_a_clear_error(bad: str) -> None:
    expected = f"allowed_hosts: '{bad}' is not a host name; give the name alone"
    with pytest.raises(TelepresenceConfigError, match=re.escape(expected)):
        validate_allowed_hosts([bad])


def test_allowed_hosts_are_normalised() -> None:
    assert validate_allowed_hosts([" Robot.Example. ", "", "*", "10.0.0.2"]) == (
        "robot.example", "*", "10.0.0.2")


def test_the_refusal_names_the_host_and_the_parameter_in_both_languages() -> None:
    text = refusal_text("evil.example:8080\x1b[31m")
    assert "« evil.example:8080[31m »" in text and "'evil.example:8080[31m'" in text
    assert text.count("allowed_hosts") == 2 and "Accès refusé" in text and "Refused" in text


def test_an_allowed_host_with_accents_is_the_name_browsers_send() -> None:
    """A French library's name with accents (robot.médiathèque-lyon.fr, as the staff write it)
    was refused at start-up as 'not a host name'; browsers send it in Host in its IDNA form
    (xn--...), which is what the robot must answer to."""
    policy = HostPolicy.from_config(["Robot.Médiathèque-Lyon.fr"], hostname="passeur-01")
    assert policy.allows("robot.xn--mdiathque-lyon-0jbk.fr:8080")
    assert policy.allows("ROBOT.XN--MDIATHQUE-LYON-0JBK.FR.")
    assert not policy.allows("robot.xn--mdiathque-lyon-0jbk.attacker.example")
    with pytest.raises(TelepresenceConfigError, match="is not a host name"):
        validate_allowed_hosts(["robot médiathèque.fr"])
