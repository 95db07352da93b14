# Client address rules and connection caps (AllowedClients, MaxConnectionFromSingleIP, MaxConnections).
import time

import pytest

from tests.lab import postern
from tests.lab.wire import Wire


def test_allowed_clients_refuses_other_addresses(make_server, server_tls):
    listeners = [postern.Listener("imap", "imap", "starttls",
                                  extra="    AllowedClients 127.0.0.1/32 ::1\n"),
                 postern.Listener("pop3", "pop3", "none",
                                  extra="    AllowedClients 127.0.0.1\n")]
    s = make_server(listeners=listeners)
    with Wire(s["imap"]) as w:
        assert w.line().startswith("* OK")
    with Wire(s["imap"], source="127.0.0.2") as w:
        assert w.line() == "* BYE Connection refused"
        assert w.closed()
    with Wire(s["pop3"], source="127.0.0.3") as w:
        assert w.line() == "-ERR Connection refused"
    refused = [e for e in s.audit_events() if e["event"] == "connection_refused"]
    assert [(e["client"], e["listener"], e["reason"]) for e in refused] == [
        ("127.0.0.2", "imap", "client_not_allowed"), ("127.0.0.3", "pop3", "client_not_allowed")]


def test_allowed_network_matches_whole_range(make_server):
    listeners = [postern.Listener("imap", "imap", "none",
                                  extra="    AllowedClients 127.0.0.0/30\n")]
    s = make_server(listeners=listeners)
    for src in ("127.0.0.1", "127.0.0.3"):
        with Wire(s["imap"], source=src) as w:
            assert w.line().startswith("* OK")
    with Wire(s["imap"], source="127.0.0.4") as w:
        assert w.line() == "* BYE Connection refused"


def test_per_ip_cap_holds_and_frees(make_server):
    s = make_server(global_extra="MaxConnectionFromSingleIP 3")
    s.wait_no_sessions()
    held = [Wire(s["imap"]) for _ in range(3)]
    for w in held:
        assert w.line().startswith("* OK")
    with Wire(s["pop3"]) as w:  # the cap is per address across listeners
        assert w.line() == "-ERR [SYS/TEMP] Too many connections, try again later"
        assert w.closed()
    with Wire(s["imap"], source="127.0.0.2") as w:  # another address is not affected
        assert w.line().startswith("* OK")
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:
        with Wire(s["imap"]) as w:
            line = w.line()
        if line.startswith("* OK") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert line.startswith("* OK")
    for w in held:
        w.close()
    ev = [e for e in s.audit_events() if e["event"] == "connection_refused"]
    assert ev and ev[0]["reason"] == "max_connections_per_ip"


def test_listener_and_global_caps(make_server):
    listeners = postern.standard_listeners({"imap": "    MaxConnections 2\n"})
    s = make_server(listeners=listeners, global_extra="MaxConnections 4")
    s.wait_no_sessions()
    a = [Wire(s["imap"], source="127.0.0.%d" % i) for i in (1, 2)]
    for w in a:
        assert w.line().startswith("* OK")
    with Wire(s["imap"], source="127.0.0.3") as w:
        assert w.line() == "* BYE [UNAVAILABLE] Too many connections, try again later"
    b = [Wire(s["pop3"], source="127.0.0.%d" % i) for i in (4, 5)]
    for w in b:
        assert w.line().startswith("+OK")
    with Wire(s["pop3"], source="127.0.0.6") as w:  # 4 in total now
        assert w.line().startswith("-ERR [SYS/TEMP] Too many connections")
    for w in a + b:
        w.close()


def test_implicit_tls_refusal_is_silent(make_server, tls_ctx):
    listeners = [postern.Listener("imaps", "imap", "implicit",
                                  extra="    AllowedClients 127.0.0.1\n")]
    s = make_server(listeners=listeners)
    import socket
    sock = socket.create_connection(("127.0.0.1", s["imaps"]), source_address=("127.0.0.2", 0))
    sock.settimeout(5)
    assert sock.recv(100) == b""
    sock.close()
