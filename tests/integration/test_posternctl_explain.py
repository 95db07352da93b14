"""posternctl explain and test-login: the server's own pipeline, offline.

The acceptance rule of the issue: explain and the server agree on every case of the auth
matrix. Each case is run both ways -- posternctl explain against the server's configuration,
and a real login through the running server -- and the reason codes are compared.
"""
import base64
import imaplib
import json
import os
import poplib
import ssl
import subprocess

import pytest

from tests.lab import postern

PW = "Demo-Pass-1"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def posternctl():
    path = os.environ.get("POSTERNCTL") or os.path.join(REPO, "build", "posternctl")
    if not os.path.exists(path):
        pytest.skip("posternctl not built")
    return path


def ctl(server, *args, stdin=None):
    done = subprocess.run([posternctl(), "-c", server.conf] + list(args), capture_output=True,
                          text=True, input=stdin, timeout=30)
    return done


def explain(server, login, protocol="imap", tls=True, mech=None, profile=None):
    args = ["explain", login, "--protocol", protocol, "--tls" if tls else "--no-tls",
            "--format", "json"]
    if mech:
        args += ["--mech", mech]
    if profile:
        args += ["--profile", profile]
    done = ctl(server, *args)
    assert done.returncode in (0, 1), done.stderr
    r = json.loads(done.stdout)
    assert (done.returncode == 0) == (r["decision"] == "verify-password"), r
    return r


@pytest.fixture(scope="module")
def server(slapd, server_tls):
    d = postern.public_dir("posternd-ctl-")
    s = postern.Posternd(server_tls, directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 0s\n    Form proxy-address allow"),
        pop3_extra="AccountFilter \"(!(sAMAccountName=dup1))\"")
    s.write_config()
    s.start()
    yield s
    s.stop()


def server_login(server, tls_ctx, login, protocol, tls, mech):
    """The reason code the running server gives for `login` with the right password."""
    before = len(server.audit_events())
    if protocol == "imap":
        m = (imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx) if tls
             else imaplib.IMAP4("127.0.0.1", server["imap"]))
        try:
            if mech == "PLAIN":
                m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (login, PW)).encode())
            else:
                m.login(m._quote(login), PW)  # imaplib sends the user name unquoted
        except imaplib.IMAP4.error:
            pass
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
    else:
        p = (poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx) if tls
             else poplib.POP3("127.0.0.1", server["pop3"]))
        try:
            if mech == "PLAIN":
                p._shortcmd("AUTH PLAIN " + base64.b64encode(
                    ("\0%s\0%s" % (login, PW)).encode()).decode())
            else:
                p.user(login)
                p.pass_(PW)
        except poplib.error_proto:
            pass
        finally:
            try:
                p.quit()
            except (poplib.error_proto, OSError):
                pass
    events = [e for e in server.audit_events()[before:] if e["event"] == "auth"]
    assert len(events) == 1, (login, events)
    return events[0]


LOGINS = ["jdoe", "EXAMPLE\\jdoe", "example.test\\JDOE", "jdoe@example.test",
          "asmith@example.test", "asmith", "anna", "OTHER\\jdoe", "EXAMPLE\\jdoe\\anna",
          "john.doe@example.test", "jd@example.de", "nobody@example.test", "Administrator",
          "Guest", "krbtgt", "WS01$", "disabled1", "locked1", "expired1", "mustchange1",
          "noimap1", "nopop1", "dadmin", "shared", "dup1", "*", "*)(uid=*", "a\\b\\c\\d"]


@pytest.mark.parametrize("protocol,tls,mech", [
    ("imap", True, None), ("imap", False, None), ("imap", True, "PLAIN"),
    ("pop3", True, None), ("pop3", False, None), ("pop3", True, "PLAIN"),
])
def test_explain_agrees_with_the_server(server, tls_ctx, protocol, tls, mech):
    disagreements = []
    for login in LOGINS:
        e = explain(server, login, protocol, tls, mech)
        ev = server_login(server, tls_ctx, login, protocol, tls, mech)
        if e["decision"] == "verify-password":
            # explain stops before the password: with the right one the server allows
            ok = ev["result"] == "allow"
        else:
            ok = e["reason"] == ev["reason"]
        if not ok or (e["form"] or None) != ev.get("form"):
            disagreements.append((login, e["decision"], e["reason"], e["form"], ev["result"],
                                  ev["reason"], ev.get("form")))
    assert not disagreements, disagreements


def test_explain_shows_the_steps(server, slapd):
    done = ctl(server, "explain", "EXAMPLE\\asmith")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "login form" in out and "domain-name" in out
    # the filter actually sent, escaped, and the account it found
    assert "(&(objectClass=user)(sAMAccountName=asmith))" in out
    assert "cn=Anna Smith,ou=Staff,dc=example,dc=test" in out
    assert "works only if alias = sAMAccountName" in out and "alias_not_account_name" in out
    assert "decision:  refuse (alias_not_account_name)" in out
    # injection attempts appear escaped (RFC 4515) and match nobody
    r = explain(server, "*)(uid=*")
    steps = [s for s in r["steps"] if s["rule"] == "search"]
    assert steps and all("\\2a\\29\\28uid=\\2a" in s["detail"] for s in steps), steps
    assert r["reason"] == "unknown_account"


def test_profile_what_if(server):
    assert explain(server, "EXAMPLE\\jdoe\\anna")["reason"] == "login_form_refused"
    r = explain(server, "EXAMPLE\\jdoe\\anna", profile="exchange2003")
    assert r["decision"] == "verify-password" and r["mailbox"] == "anna", r
    assert any(s["rule"].startswith("the mailbox delegates") for s in r["steps"])
    r = explain(server, "EXAMPLE\\nopop1\\anna", profile="exchange2003")
    assert r["reason"] == "mailbox_access_denied"


def test_test_login_checks_the_password_and_audits_it(server):
    before = len(server.audit_events())
    done = ctl(server, "test-login", "jdoe", stdin=PW + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "decision:  allow (ok)" in done.stdout
    done = ctl(server, "test-login", "jdoe", "--format", "json", stdin="wrong\n")
    assert done.returncode == 1
    assert json.loads(done.stdout)["reason"] == "invalid_credentials"
    events = server.audit_events()[before:]
    assert [(e["result"], e["reason"], e.get("test"), e["client"]) for e in events] == [
        ("allow", "ok", True, "local"), ("deny", "invalid_credentials", True, "local")]
    # the password never appears: not in argv (it is read from stdin), not in any output
    assert PW not in done.stdout + done.stderr
    with open(server.audit) as f:
        assert PW not in f.read()


def test_usage_errors(server):
    assert ctl(server, "explain").returncode == 2
    assert ctl(server, "explain", "jdoe", "--protocol", "smtp").returncode == 2
    assert ctl(server, "explain", "jdoe", "--profile", "exchange2000").returncode == 2
    assert ctl(server, "test-login", "jdoe", stdin="").returncode == 2
    done = subprocess.run([posternctl(), "-c", "/nonexistent.conf", "explain", "jdoe"],
                          capture_output=True, text=True)
    assert done.returncode == 3 and "nonexistent" in done.stderr
