# POP3 before login, through poplib, curl and a raw socket: CAPA, STLS, LoginType, limits.
import poplib
import subprocess
import time

import pytest

from tests.lab.wire import Wire


def test_capa_before_and_after_stls(server, tls_ctx):
    p = poplib.POP3("127.0.0.1", server["pop3"])
    assert p.getwelcome() == b"+OK postern POP3 service ready"
    caps = p.capa()
    assert "STLS" in caps and "RESP-CODES" in caps and "AUTH-RESP-CODE" in caps
    assert "USER" not in caps and "SASL" not in caps
    p.stls(context=tls_ctx)
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"]
    p.quit()


def test_user_without_tls_is_refused_with_auth_code(server):
    with Wire(server["pop3"]) as w:
        w.line()
        w.send("USER jdoe\r\n")
        assert w.line().startswith("-ERR [AUTH]")
        w.send("PASS Demo-Pass-1\r\n")
        assert w.line().startswith("-ERR")  # no USER was accepted
        w.send("NOOP\r\n")
        assert w.line() == "+OK"
    ev = [e for e in server.audit_events() if e["protocol"] == "pop3" and not e["tls"]][-1]
    assert ev["reason"] == "plaintext_requires_tls" and ev["login"] == "jdoe"


def test_user_pass_over_tls_not_yet_available(server, tls_ctx):
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx)
    p.user("jdoe")
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("Demo-Pass-1 with spaces")
    assert str(e.value).startswith("b'-ERR [SYS/TEMP]")
    p.quit()
    ev = [e for e in server.audit_events() if e["protocol"] == "pop3" and e["tls"]][-1]
    assert ev["reason"] == "directory_not_configured" and ev["listener"] == "pop3s"
    assert "with spaces" not in open(server.audit).read()


def test_stls_discards_pipelined_commands(server, tls_ctx):
    with Wire(server["pop3"]) as w:
        w.line()
        w.send("STLS\r\nCAPA\r\nQUIT\r\n")
        assert w.line() == "+OK Begin TLS negotiation"
        w.starttls(tls_ctx)
        assert w.nothing_within(0.5), w.buf
        w.send("NOOP\r\n")
        assert w.line() == "+OK"


def test_line_too_long_and_bad_commands(server):
    with Wire(server["pop3"]) as w:
        w.line()
        w.send("NOOP " + "x" * 2000 + "\r\n")
        assert w.line() == "-ERR Line too long"
        w.send("NOOP\r\n")
        assert w.line() == "+OK"
        w.send("APOP jdoe 0123456789abcdef0123456789abcdef\r\n")
        assert w.line() == "-ERR APOP is not supported"
        w.send("STAT\r\n")
        assert w.line() == "-ERR Command not valid before login"
        w.send("BOGUS\r\n")
        assert w.line() == "-ERR Unknown command"
        w.send("US\x01ER x\r\n")
        assert w.line().startswith("-ERR")


def test_too_many_bad_commands(server):
    with Wire(server["pop3"]) as w:
        w.line()
        w.send("BOGUS\r\n" * 10)
        lines = [w.line() for _ in range(11)]
        assert lines[-1] == "-ERR Too many invalid commands"
        assert w.closed()


def test_auth_listing_and_quit(server, tls_ctx):
    with Wire(server["pop3s"], tls_context=tls_ctx) as w:
        w.line()
        w.send("AUTH\r\n")
        assert [w.line() for _ in range(4)] == ["+OK", "PLAIN", "LOGIN", "."]
        w.send("AUTH X-UNKNOWN\r\n")
        assert w.line().startswith("-ERR")
        w.send("QUIT\r\n")
        assert w.line() == "+OK postern signing off"
        assert w.closed()


def test_preauth_timeout(make_server):
    s = make_server(pop3_extra="PreAuthenticatedConnectionTimeout 2")
    with Wire(s["pop3"]) as w:
        w.line()
        assert w.line(timeout=6) == "-ERR Disconnected for inactivity"
        assert w.closed()


def test_curl_pop3_with_stls(server, test_ca):
    """curl as a real client: STLS upgrade required (--ssl-reqd), login refused cleanly."""
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", test_ca["cert"],
                        "--connect-to", "localhost:%d:127.0.0.1:%d" % (server["pop3"], server["pop3"]),
                        "-u", "jdoe:Demo-Pass-1", "pop3://localhost:%d/" % server["pop3"]],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 67, (r.returncode, r.stderr)  # CURLE_LOGIN_DENIED
