# IMAP before login, through imaplib and a raw socket: capabilities, STARTTLS, LoginType, parser limits.
import imaplib
import time

import pytest

from tests.lab.wire import Wire


def caps_of(line):
    assert line.startswith("* OK [CAPABILITY "), line
    return line[len("* OK [CAPABILITY "):line.index("]")].split()


def test_capabilities_before_and_after_starttls(server, tls_ctx):
    m = imaplib.IMAP4("127.0.0.1", server["imap"])
    before = set(m.capabilities)
    assert {"IMAP4REV1", "STARTTLS", "LOGINDISABLED", "ID", "LITERAL+", "SASL-IR"} <= before
    assert not any(c.startswith("AUTH=") for c in before)
    m.starttls(ssl_context=tls_ctx)
    after = set(m.capabilities)  # imaplib asks CAPABILITY again after the handshake
    assert "STARTTLS" not in after and "LOGINDISABLED" not in after
    assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= after
    m.logout()


def test_implicit_tls_greeting_offers_plaintext_mechanisms(server, tls_ctx):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    assert m.sock.version() in ("TLSv1.3", "TLSv1.2")
    assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= set(m.capabilities)
    assert "STARTTLS" not in m.capabilities and "LOGINDISABLED" not in m.capabilities
    m.logout()


def test_login_without_tls_is_refused_before_any_check(server):
    with Wire(server["imap"]) as w:
        w.line()
        reply = w.command("a1", "LOGIN jdoe Demo-Pass-1")
        assert reply[-1].startswith("a1 NO [PRIVACYREQUIRED]"), reply
        assert "STARTTLS" in reply[-1]
        # the session stays usable
        assert w.command("a2", "NOOP")[-1] == "a2 OK NOOP completed"
    events = [e for e in server.audit_events() if e["conn"] and e["reason"] == "plaintext_requires_tls"]
    assert events and events[-1]["login"] == "jdoe" and events[-1]["tls"] is False
    assert events[-1]["mechanism"] == "LOGIN-COMMAND" and events[-1]["result"] == "deny"


def test_authenticate_plain_without_tls_is_refused(server):
    with Wire(server["imap"]) as w:
        w.line()
        reply = w.command("a1", "AUTHENTICATE PLAIN AGpkb2UARGVtby1QYXNzLTE=")
        assert reply[-1].startswith("a1 NO [PRIVACYREQUIRED]"), reply
        reply = w.command("a2", "AUTHENTICATE X-UNKNOWN")
        assert reply[-1].startswith("a2 NO"), reply


def test_login_over_tls_says_not_yet_available_and_audits(server, tls_ctx):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("jdoe", "Demo-Pass-1")
    assert "[UNAVAILABLE]" in str(e.value) and "not yet available" in str(e.value)
    m.logout()
    ev = [e for e in server.audit_events() if e["event"] == "auth" and e["tls"]][-1]
    assert ev["reason"] == "directory_not_configured" and ev["result"] == "deny"
    assert ev["listener"] == "imaps" and ev["protocol"] == "imap"
    # the password appears nowhere
    assert "Demo-Pass-1" not in open(server.audit).read()
    assert "Demo-Pass-1" not in server.log_text()


def test_starttls_discards_pipelined_commands(server, tls_ctx):
    """CVE-2011-0411 class: a command injected behind STARTTLS must not run after the handshake."""
    with Wire(server["imap"]) as w:
        w.line()
        w.send("a1 STARTTLS\r\nX1 CAPABILITY\r\nX2 LOGOUT\r\n")
        assert w.line() == "a1 OK Begin TLS negotiation now"
        w.starttls(tls_ctx)
        assert w.nothing_within(0.5), "the injected commands were answered: %r" % w.buf
        assert w.command("a2", "NOOP") == ["a2 OK NOOP completed"]
    assert "discarded" in server.log_text()


def test_starttls_twice_and_on_tls_port(server, tls_ctx):
    with Wire(server["imap"]) as w:
        w.line()
        assert w.command("a1", "STARTTLS")[-1].startswith("a1 OK")
        w.starttls(tls_ctx)
        assert w.command("a2", "STARTTLS")[-1].startswith("a2 BAD")
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        assert w.command("a1", "STARTTLS")[-1].startswith("a1 BAD")


def test_id_command(server):
    with Wire(server["imap"]) as w:
        w.line()
        assert w.command("a1", 'ID ("name" "pytest" "version" "1")') == [
            '* ID ("name" "postern")', "a1 OK ID completed"]
        assert w.command("a2", "ID NIL")[-1] == "a2 OK ID completed"
        assert w.command("a3", 'ID ("odd")')[-1].startswith("a3 BAD")
        assert w.command("a4", "ID")[-1].startswith("a4 BAD")


def test_literals_synchronizing_and_non_synchronizing(server):
    with Wire(server["imap"]) as w:
        w.line()
        w.send("a1 ID ({4}\r\n")
        assert w.line().startswith("+ ")
        w.send("name {6}\r\n")
        assert w.line().startswith("+ ")
        w.send("pytest)\r\n")
        assert w.until_tagged("a1")[-1] == "a1 OK ID completed"
        # LITERAL+ (RFC 7888): no continuation request
        w.send("a2 ID ({4+}\r\nname {6+}\r\npytest)\r\n")
        assert w.until_tagged("a2") == ['* ID ("name" "postern")', "a2 OK ID completed"]


def test_oversized_line_is_refused_and_session_continues(server):
    with Wire(server["imap"]) as w:
        w.line()
        w.send("a1 NOOP " + "x" * 10000 + "\r\n")
        assert w.line().startswith("a1 BAD [TOOBIG]")
        assert w.command("a2", "NOOP") == ["a2 OK NOOP completed"]


def test_literal_limits(server):
    with Wire(server["imap"]) as w:
        w.line()
        # synchronizing: refused before the client sends the data
        w.send("a1 LOGIN {100000}\r\n")
        assert w.line().startswith("a1 BAD [TOOBIG]")
        assert w.command("a2", "NOOP") == ["a2 OK NOOP completed"]
        # absurd sizes are refused, not wrapped
        w.send("a3 LOGIN {99999999999999999999999}\r\n")
        assert w.line().startswith("a3 BAD")
        assert w.command("a4", "NOOP") == ["a4 OK NOOP completed"]
    with Wire(server["imap"]) as w:
        w.line()
        # non-synchronizing: the data follows anyway, so the connection ends
        w.send("b1 LOGIN {100000+}\r\n")
        assert w.line().startswith("b1 BAD [TOOBIG]")
        assert w.line().startswith("* BYE")
        assert w.closed()


@pytest.mark.parametrize("bad", [
    "a1 LOGIN \"unterminated\r\n",
    "a1 LOGIN \"bad\\escape\" x\r\n",
    "a1 ID ((((\r\n",
    "a1 ID )\r\n",
    "a1  NOOP\r\n",
    "+ NOOP\r\n",
    "a1 NOOP\x00\r\n",
    "a1 LOGIN {abc}\r\n",
    "a1\r\n",
    "\r\n",
])
def test_malformed_commands_get_bad(server, bad):
    with Wire(server["imap"]) as w:
        w.line()
        w.send(bad)
        l = w.line()
        assert " BAD " in l, (bad, l)
        assert w.command("z9", "NOOP") == ["z9 OK NOOP completed"]


def test_unknown_and_wrong_state_commands(server):
    with Wire(server["imap"]) as w:
        w.line()
        assert w.command("a1", "FROBNICATE")[-1] == "a1 BAD Unknown command"
        assert w.command("a2", "CAPABILITY extra")[-1].startswith("a2 BAD")


def test_repeated_bad_commands_disconnect(server):
    with Wire(server["imap"]) as w:
        w.line()
        for i in range(9):
            assert w.command("b%d" % i, "BOGUS")[-1].startswith("b%d BAD" % i)
        w.send("b9 BOGUS\r\n")
        assert w.line().startswith("b9 BAD")
        assert w.line() == "* BYE Too many invalid commands"
        assert w.closed()


def test_logout(server):
    with Wire(server["imap"]) as w:
        w.line()
        assert w.command("a1", "LOGOUT") == ["* BYE Logging out", "a1 OK LOGOUT completed"]
        assert w.closed()


def test_preauth_timeout(make_server):
    s = make_server(imap_extra="PreAuthenticatedConnectionTimeout 2")
    with Wire(s["imap"]) as w:
        w.line()
        t0 = time.monotonic()
        assert w.line(timeout=6) == "* BYE Autologout; idle for too long"
        assert w.closed()
        assert 1.5 < time.monotonic() - t0 < 5


def test_dribbling_bytes_do_not_extend_the_preauth_timeout(make_server):
    s = make_server(imap_extra="PreAuthenticatedConnectionTimeout 2")
    with Wire(s["imap"]) as w:
        w.line()
        t0 = time.monotonic()
        try:
            for ch in "a1 NOOP":
                w.send(ch)
                time.sleep(0.4)
        except OSError:
            pass  # closed while we were still typing, as it should be
        assert w.line(timeout=6).startswith("* BYE Autologout")
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("login_type,cleartext_caps", [
    ("plaintext-login", {"AUTH=PLAIN", "AUTH=LOGIN"}),
    ("PlainTextAuthentication", {"LOGINDISABLED"}),
    ("secure-login", {"LOGINDISABLED"}),
])
def test_login_type_drives_capabilities(make_server, login_type, cleartext_caps):
    s = make_server(imap_extra="LoginType %s" % login_type)
    with Wire(s["imap"]) as w:
        caps = set(caps_of(w.line()))
        assert cleartext_caps <= caps
        if login_type == "plaintext-login":
            assert "LOGINDISABLED" not in caps
            reply = w.command("a1", "LOGIN jdoe Demo-Pass-1")
            # allowed in cleartext: the pipeline runs and reaches the (absent) directory
            assert reply[-1].startswith("a1 NO [UNAVAILABLE]"), reply
        else:
            assert not any(c.startswith("AUTH=") for c in caps)
            assert w.command("a1", "LOGIN jdoe x")[-1].startswith("a1 NO [PRIVACYREQUIRED]")


def test_unknown_mechanism_and_utf8_login_are_audited(server, tls_ctx):
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        assert w.command("a1", "AUTHENTICATE X-SECRET-MECH")[-1].startswith("a1 NO [CANNOT]")
        w.send('a2 LOGIN "j\xc3\xb6rg" "pw"\r\n'.encode("latin-1"))
        assert w.until_tagged("a2")[-1].startswith("a2 NO [UNAVAILABLE]")
        w.send(b'a3 LOGIN "bad\xff" "pw"\r\n')
        assert w.until_tagged("a3")[-1].startswith("a3 NO")
    events = [e for e in server.audit_events() if e["event"] == "auth"]
    unknown = [e for e in events if e["mechanism"] == "X-SECRET-MECH"]
    assert unknown and unknown[-1]["reason"] == "mechanism_unsupported"
    assert any(e["login"] == "j\u00f6rg" for e in events)       # UTF-8 kept readable
    assert any(e["login"] == "bad\ufffd" for e in events)       # invalid bytes marked


def test_literal_marker_split_by_the_network(server):
    """A TCP segment boundary between "{4" and "}\\r\\n" must not lose the literal."""
    with Wire(server["imap"]) as w:
        w.line()
        w.send("a1 ID ({4")
        time.sleep(0.2)
        w.send("}\r\n")
        assert w.line().startswith("+ ")
        w.send("name {6+")
        time.sleep(0.2)
        w.send("}\r\nNOOP\r\n)\r\n")  # literal data that looks like a command
        assert w.until_tagged("a1") == ['* ID ("name" "postern")', "a1 OK ID completed"]
        assert w.nothing_within(0.3)


def test_oversized_line_announcing_nonsync_literal_closes(server):
    """The literal data after an over-long "{n+}" line must never run as commands."""
    with Wire(server["imap"]) as w:
        w.line()
        w.send("a1 ID (" + "x" * 5000 + " {14+}\r\nX1 LOGOUT\r\nab)\r\n")
        assert w.line().startswith("a1 BAD [TOOBIG]")
        assert w.line() == "* BYE Command line too long"
        assert w.closed()
        assert "X1 OK" not in w.buf.decode()
