# Directory logins against the lab slapd: every login form, profile, blocked kind and failure,
# through imaplib, poplib and curl, with the audit trail checked for each.
import imaplib
import os
import poplib
import subprocess
import re
import time

import pytest

from tests.lab import postern
from tests.lab.wire import Wire

PW = "Demo-Pass-1"


def new_dir():
    return postern.public_dir("posternd-auth-")


@pytest.fixture(scope="module")
def auth_server(slapd, server_tls):
    d = new_dir()
    s = postern.Posternd(server_tls, directory=d,
                         global_extra=postern.directory_block(slapd, d))
    s.write_config()
    s.start()
    yield s
    s.stop()


def imap_login(server, ctx, login, password=PW):
    """(ok, text) of an IMAP LOGIN over implicit TLS."""
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx)
    try:
        typ, data = m.login(login, password)
        caps = m.capability()[1][0].decode().split()
        m.logout()
        return True, data[0].decode(), caps
    except imaplib.IMAP4.error as e:
        m.logout()
        return False, str(e), None


def pop3_login(server, ctx, login, password=PW):
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=ctx)
    try:
        p.user(login)
        p.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        p.quit()


def slapd_binds(slapd):
    time.sleep(0.2)
    with open(slapd.log_path, errors="replace") as f:
        return sum(1 for line in f if "BIND dn=\"cn=" in line and "ou=Staff" in line
                   and "method=" in line)


def last_auth(server, login=None):
    events = [e for e in server.audit_events() if e["event"] == "auth"]
    if login is not None:
        events = [e for e in events if e["login"] == login]
    assert events, "no audit event for %r" % login
    return events[-1]


@pytest.mark.parametrize("login,form", [
    ("jdoe", "name"), ("JDoe", "name"), ("EXAMPLE\\jdoe", "domain-name"),
    ("example\\JDOE", "domain-name"), ("example.test\\jdoe", "domain-name"),
    ("jdoe@example.test", "upn"), ("JDOE@EXAMPLE.TEST", "upn"),
    ("asmith@example.test", "upn"),
])
def test_allowed_forms(auth_server, tls_ctx, login, form):
    ok, text, caps = imap_login(auth_server, tls_ctx, login)
    assert ok, text
    assert "Logged in" in text
    assert not any(c.startswith("AUTH=") for c in caps)  # nothing about login after login
    ev = last_auth(auth_server, login)
    assert (ev["result"], ev["reason"], ev["form"]) == ("allow", "ok", form)
    assert ev["account_dn"].lower().startswith("cn=")
    assert ev["directory_server"] == auth_server_slapd_uri(auth_server)
    assert "TLS1.3" in ev["tls_session"] or "TLS1.2" in ev["tls_session"]


def auth_server_slapd_uri(server):
    conf = open(server.conf).read()
    return conf.split("URI ", 1)[1].split()[0]


@pytest.mark.parametrize("login,reason", [
    ("asmith", "alias_not_account_name"),          # alias anna != sAMAccountName
    ("EXAMPLE\\asmith", "alias_not_account_name"),
    ("anna", "unknown_account"),                   # an alias is not an account name
    ("OTHER\\jdoe", "unknown_domain"),
    ("EXAMPLE\\jdoe\\anna", "login_form_refused"),  # exchange2013: no cross-mailbox form
    ("john.doe@example.test", "login_form_refused"),  # primary SMTP: refused by default
    ("jd@example.de", "login_form_refused"),          # secondary address
    ("nobody@example.test", "unknown_account"),
    ("Administrator", "builtin_administrator"),
    ("Administrator@example.test", "builtin_administrator"),
    ("Guest", "guest_account"),
    ("krbtgt", "krbtgt_account"),
    ("WS01$", "computer_account"),
    ("disabled1", "account_disabled"),
    ("locked1", "account_locked"),
    ("expired1", "account_expired"),
    ("mustchange1", "password_must_change"),
    ("noimap1", "protocol_disabled"),
    ("*", "unknown_account"),
    ("*)(sAMAccountName=*", "unknown_account"),
    ("j*", "unknown_account"),
    ("z%n%n%n%n@example.test", "unknown_account"),  # printf directives are just text
    ("y%s%s%s@example.test", "unknown_account"),
    ("%x%x", "unknown_account"),
    ("\\", "invalid_login_name"),
    ("a\\b\\c\\d", "invalid_login_name"),
])
def test_refused_logins_look_alike(auth_server, tls_ctx, login, reason):
    # sent as a quoted string, as clients do for names with specials (RFC 3501 §4.3)
    quoted = '"%s"' % login.replace("\\", "\\\\").replace('"', '\\"')
    ok, text, _ = imap_login(auth_server, tls_ctx, quoted)
    assert not ok
    assert text == "b'[AUTHENTICATIONFAILED] Authentication failed'", text
    ev = last_auth(auth_server, login)
    assert (ev["result"], ev["reason"]) == ("deny", reason), ev


def test_wrong_and_empty_password(auth_server, tls_ctx, slapd):
    ok, text, _ = imap_login(auth_server, tls_ctx, "jdoe", "wrong-password")
    assert not ok and "[AUTHENTICATIONFAILED]" in text
    assert last_auth(auth_server, "jdoe")["reason"] == "invalid_credentials"
    binds_before = open(slapd.log_path).read().count("BIND dn=\"cn=John Doe")
    ok, text, _ = imap_login(auth_server, tls_ctx, "jdoe", "")
    assert not ok and "[AUTHENTICATIONFAILED]" in text
    assert last_auth(auth_server, "jdoe")["reason"] == "empty_password"
    time.sleep(0.2)
    assert open(slapd.log_path).read().count("BIND dn=\"cn=John Doe") == binds_before


def test_blocked_accounts_never_reach_the_directory(auth_server, tls_ctx, slapd):
    """POLICY.md §3: no password oracle, no lockout through us."""
    start = len(open(slapd.log_path).read())  # the session's slapd is shared with other tests
    for login in ("Administrator", "disabled1", "locked1", "Guest"):
        imap_login(auth_server, tls_ctx, login)
    time.sleep(0.2)
    log = open(slapd.log_path).read()[start:]
    assert "SRCH" in log  # the lookups did reach it
    for cn in ("cn=Administrator,", "cn=Disabled One,", "cn=Locked One,", "cn=Guest,"):
        assert "BIND dn=\"%s" % cn not in log, cn


def test_pop3_user_pass(auth_server, tls_ctx):
    p = poplib.POP3_SSL("127.0.0.1", auth_server["pop3s"], context=tls_ctx)
    p.user("EXAMPLE\\jdoe")
    assert p.pass_(PW).startswith(b"+OK Logged in")
    with pytest.raises(poplib.error_proto) as e:
        p.stat()
    assert "not yet available" in str(e.value)
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", auth_server["pop3s"], context=tls_ctx)
    p.user("nopop1")
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(PW)
    assert str(e.value) == "b'-ERR [AUTH] Authentication failed'"
    assert last_auth(auth_server, "nopop1")["reason"] == "protocol_disabled"
    p.quit()


def test_curl_logs_in_over_pop3_and_imap(auth_server, test_ca):
    for scheme, port in (("pop3s", auth_server["pop3s"]), ("imaps", auth_server["imaps"])):
        r = subprocess.run(["curl", "-sS", "--cacert", test_ca["cert"], "--connect-to",
                            "localhost:%d:127.0.0.1:%d" % (port, port), "-u",
                            "jdoe@example.test:%s" % PW, "--login-options", "AUTH=+LOGIN",
                            "%s://localhost:%d/" % (scheme, port)],
                           capture_output=True, text=True, timeout=20)
        ev = last_auth(auth_server, "jdoe@example.test")
        assert ev["result"] == "allow", (scheme, r.stderr, ev)


def test_profile_and_form_overrides(slapd, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 0s\n    Profile exchange2003\n"
                         "    Form primary-smtp allow\n    Form proxy-address allow"))
    assert imap_login(s, tls_ctx, "john.doe@example.test")[0]
    assert last_auth(s, "john.doe@example.test")["form"] == "primary-smtp"
    assert imap_login(s, tls_ctx, "jd@example.de")[0]
    assert last_auth(s, "jd@example.de")["form"] == "proxy-address"
    # exchange2003: DOMAIN\user\alias opens the alias's mailbox -- when the mailbox delegates
    # to the account: anna's msExchDelegateListLink names jdoe
    assert imap_login(s, tls_ctx, "EXAMPLE\\jdoe\\anna")[0]
    ev = last_auth(s, "EXAMPLE\\jdoe\\anna")
    assert ev["form"] == "domain-name-alias" and ev["mailbox"] == "anna" and ev["account"] == "jdoe"
    # jdoe's mailbox delegates to the group Sales, of which asmith is a member
    assert imap_login(s, tls_ctx, "EXAMPLE\\asmith\\jdoe")[0]
    ev = last_auth(s, "EXAMPLE\\asmith\\jdoe")
    assert ev["mailbox"] == "jdoe" and ev["account"] == "asmith"
    # nobody delegated anna's mailbox to nopop1: its own password opens nothing else
    assert not imap_login(s, tls_ctx, "EXAMPLE\\nopop1\\anna")[0]
    assert last_auth(s, "EXAMPLE\\nopop1\\anna")["reason"] == "mailbox_access_denied"
    # one's own mailbox needs no delegation
    assert imap_login(s, tls_ctx, "EXAMPLE\\jdoe\\jdoe")[0]
    assert not imap_login(s, tls_ctx, "EXAMPLE\\jdoe\\shared")[0]  # two mailboxes: ambiguous
    assert last_auth(s, "EXAMPLE\\jdoe\\shared")["reason"] == "unknown_mailbox"


def test_block_privileged_accounts(slapd, server_tls, tls_ctx, make_server, auth_server):
    assert imap_login(auth_server, tls_ctx, "dadmin")[0]  # allowed by default
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 0s\n    BlockPrivilegedAccounts yes"))
    assert not imap_login(s, tls_ctx, "dadmin")[0]
    assert last_auth(s, "dadmin")["reason"] == "privileged_account"
    assert imap_login(s, tls_ctx, "jdoe")[0]


def test_failure_delay_is_the_same_for_every_refusal(slapd, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 1s"))
    timings = {}
    for login, password in (("nobody", PW), ("jdoe", "wrong"), ("Administrator", PW)):
        t0 = time.monotonic()
        assert not imap_login(s, tls_ctx, login, password)[0]
        timings[login] = time.monotonic() - t0
    for login, t in timings.items():
        assert 0.95 < t < 1.8, timings
    t0 = time.monotonic()
    assert imap_login(s, tls_ctx, "jdoe")[0]
    assert time.monotonic() - t0 < 0.9


def test_cleartext_login_gets_an_alert(slapd, server_tls, make_server):
    d = new_dir()
    s = make_server(directory=d, imap_extra="LoginType plaintext-login",
                    global_extra=postern.directory_block(slapd, d))
    m = imaplib.IMAP4("127.0.0.1", s["imap"])
    m.login("jdoe", PW)
    assert any(b"[ALERT]" in line for line in m.untagged_responses.get("OK", []))
    m.logout()


def test_directory_failover_and_outage(server_tls, tls_ctx, make_server, tmp_path_factory):
    from tests.lab import Slapd, ports
    dead = ports.free_port()
    own = Slapd(tmp_path_factory.mktemp("slapd-outage"), tls=True)
    own.start()
    try:
        d = new_dir()
        s = make_server(directory=d, global_extra=postern.directory_block(
            own, d, uris=["ldap://127.0.0.1:%d" % dead, own.uri]))
        assert imap_login(s, tls_ctx, "jdoe")[0]
        assert last_auth(s, "jdoe")["directory_server"] == own.uri
        own.stop()
        t0 = time.monotonic()
        ok, text, _ = imap_login(s, tls_ctx, "jdoe")
        assert not ok and "[UNAVAILABLE]" in text
        assert time.monotonic() - t0 < 10
        assert last_auth(s, "jdoe")["reason"] == "directory_unavailable"
        own.start()  # same port, same data
        deadline = time.monotonic() + 10
        while not imap_login(s, tls_ctx, "jdoe")[0]:
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.2)
    finally:
        own.stop()


def test_no_password_in_any_log(auth_server, slapd):
    for path in (auth_server.log, auth_server.audit):
        assert PW not in open(path).read()
    assert "wrong-password" not in open(auth_server.audit).read()


def test_reload_changes_login_rules_for_new_sessions(slapd, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(slapd, d))
    assert not imap_login(s, tls_ctx, "john.doe@example.test")[0]
    s.global_extra = postern.directory_block(slapd, d, logins="FailureDelay 0s\n"
                                                              "    Form primary-smtp allow")
    s.write_config()
    s.reload()
    assert imap_login(s, tls_ctx, "john.doe@example.test")[0]
    # directory_block() rewrote the root-only password file: it changed, nobody cannot read
    # it again, so the running directory client stayed -- and the new login rules applied
    assert "password file or keytab changed but cannot be read again" in s.log_text()


def test_check_config_reads_the_directory_settings(slapd, server_tls):
    d = new_dir()
    s = postern.Posternd(server_tls, directory=d, global_extra=postern.directory_block(slapd, d))
    s.write_config()
    assert postern.check_config(s.conf)[0] == 0
    os.unlink(os.path.join(d, "ldap.secret"))
    status, out = postern.check_config(s.conf)
    assert status == 1 and "ldap.secret" in out, out


# ---- SASL PLAIN and LOGIN (RFC 4616, RFC 4959 SASL-IR, RFC 5034 POP3 AUTH) -------------------

import base64  # noqa: E402


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_imap_authenticate_plain_and_login(auth_server, tls_ctx):
    m = imaplib.IMAP4_SSL("127.0.0.1", auth_server["imaps"], ssl_context=tls_ctx)
    typ, _ = m.authenticate("PLAIN", lambda _: ("\0jdoe@example.test\0" + PW).encode())
    assert typ == "OK"
    m.logout()
    assert last_auth(auth_server, "jdoe@example.test")["mechanism"] == "PLAIN"
    m = imaplib.IMAP4_SSL("127.0.0.1", auth_server["imaps"], ssl_context=tls_ctx)
    answers = iter([b"EXAMPLE\\jdoe", PW.encode()])
    typ, _ = m.authenticate("LOGIN", lambda challenge: next(answers))
    assert typ == "OK"
    m.logout()
    ev = last_auth(auth_server, "EXAMPLE\\jdoe")
    assert (ev["mechanism"], ev["result"], ev["form"]) == ("LOGIN", "allow", "domain-name")


def test_imap_sasl_ir_cancel_and_bad_input(auth_server, tls_ctx):
    with Wire(auth_server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        # SASL-IR: the credentials on the command line
        assert w.command("a1", "AUTHENTICATE PLAIN " + b64("\0jdoe\0" + PW))[-1].startswith(
            "a1 OK [CAPABILITY")
    with Wire(auth_server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        w.send("b1 AUTHENTICATE PLAIN\r\n")
        assert w.line() == "+ "
        w.send("*\r\n")
        assert w.line() == "b1 BAD AUTHENTICATE cancelled"
        w.send("b2 AUTHENTICATE PLAIN\r\n")
        assert w.line() == "+ "
        w.send("!!!not-base64!!!\r\n")
        assert w.line(timeout=10) == "b2 BAD Invalid SASL response"
        assert w.command("b3", "NOOP") == ["b3 OK NOOP completed"]  # the session goes on
        # an authorization identity other than the user's own is refused
        w.send("b4 AUTHENTICATE PLAIN " + b64("anna\0jdoe\0" + PW) + "\r\n")
        assert w.line(timeout=10) == "b4 NO [AUTHENTICATIONFAILED] Authentication failed"
        w.send("b5 AUTHENTICATE PLAIN " + b64("\0jdoe\0wrong") + "\r\n")
        assert w.line(timeout=10) == "b5 NO [AUTHENTICATIONFAILED] Authentication failed"
    reasons = [e["reason"] for e in auth_server.audit_events()[-3:]]
    assert reasons == ["invalid_input", "authorization_identity_refused", "invalid_credentials"]


def test_imap_authenticate_without_tls_asks_for_nothing(auth_server):
    with Wire(auth_server["imap"]) as w:
        w.line()
        reply = w.command("a1", "AUTHENTICATE PLAIN")
        assert reply == [reply[-1]] and reply[-1].startswith("a1 NO [PRIVACYREQUIRED]"), reply


def test_pop3_auth_plain(auth_server, tls_ctx):
    with Wire(auth_server["pop3s"], tls_context=tls_ctx) as w:
        w.line()
        w.send("AUTH PLAIN " + b64("\0jdoe\0" + PW) + "\r\n")
        assert w.line().startswith("+OK Logged in")
    with Wire(auth_server["pop3s"], tls_context=tls_ctx) as w:
        w.line()
        w.send("AUTH PLAIN\r\n")
        assert w.line() == "+ "
        w.send(b64("\0asmith@example.test\0" + PW) + "\r\n")
        assert w.line().startswith("+OK Logged in")
    with Wire(auth_server["pop3s"], tls_context=tls_ctx) as w:
        w.line()
        w.send("AUTH LOGIN\r\n")
        assert w.line().startswith("+ ")
        w.send("*\r\n")
        assert w.line() == "-ERR AUTH cancelled"


@pytest.mark.parametrize("scheme,port_name,extra", [("imaps", "imaps", []),
                                                   ("pop3s", "pop3s", ["--sasl-ir"])])
def test_curl_sasl_plain(auth_server, test_ca, scheme, port_name, extra):
    port = auth_server[port_name]
    r = subprocess.run(["curl", "-sS", "--cacert", test_ca["cert"], "--connect-to",
                        "localhost:%d:127.0.0.1:%d" % (port, port), "-u", "asmith@example.test:%s" % PW,
                        "--login-options", "AUTH=PLAIN"] + extra +
                       ["%s://localhost:%d/" % (scheme, port)],
                       capture_output=True, text=True, timeout=20)
    ev = last_auth(auth_server, "asmith@example.test")
    assert (ev["mechanism"], ev["result"]) == ("PLAIN", "allow"), (r.stderr, ev)


def test_authenticate_login_with_initial_response(auth_server, tls_ctx):
    """curl sends the user name as LOGIN's initial response; the password prompt follows."""
    with Wire(auth_server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        w.send("a1 AUTHENTICATE LOGIN " + b64("jdoe") + "\r\n")
        assert w.line() == "+ " + b64("Password")
        w.send(b64(PW) + "\r\n")
        assert w.line().startswith("a1 OK [CAPABILITY")
    r = subprocess.run(["curl", "-sS", "--cacert", auth_server.tls.ca_cert, "--connect-to",
                        "localhost:%d:127.0.0.1:%d" % (auth_server["imaps"], auth_server["imaps"]),
                        "-u", "asmith@example.test:%s" % PW, "--login-options", "AUTH=LOGIN",
                        "imaps://localhost:%d/" % auth_server["imaps"]],
                       capture_output=True, text=True, timeout=20)
    ev = last_auth(auth_server, "asmith@example.test")
    assert (ev["mechanism"], ev["result"]) == ("LOGIN", "allow"), (r.stderr, ev)


def test_connection_closed_after_max_auth_failures(slapd, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 0s\n    MaxAuthFailures 2"))
    with Wire(s["imaps"], tls_context=tls_ctx) as w:
        w.line()
        assert w.command("a1", "LOGIN jdoe wrong1")[-1].startswith("a1 NO")
        w.send("a2 LOGIN jdoe wrong2\r\n")
        assert w.line().startswith("a2 NO [AUTHENTICATIONFAILED]")
        assert w.line() == "* BYE Too many authentication failures"
        assert w.closed()
    with Wire(s["pop3s"], tls_context=tls_ctx) as w:
        w.line()
        for i in range(2):
            w.send("USER jdoe\r\nPASS wrong%d\r\n" % i)
            assert w.line() == "+OK"
            assert w.line() == "-ERR [AUTH] Authentication failed"
        assert w.closed()


def test_penalties_per_address_and_per_login(slapd, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 0s\n    PenaltyAfter 3\n    PenaltyMax 2s\n"
                         "    MaxAuthFailures 100"))
    start = len(open(slapd.log_path).read())
    with Wire(s["imaps"], tls_context=tls_ctx) as w:
        w.line()
        for i in range(3):
            assert w.command("a%d" % i, "LOGIN jdoe wrong%d" % i)[-1].startswith("a%d NO" % i)
        # penalised now: even the right password is refused, and the directory is not asked
        binds = open(slapd.log_path).read()[start:].count('BIND dn="cn=John Doe')
        reply = w.command("b1", "LOGIN jdoe %s" % PW)
        assert reply[-1] == "b1 NO [AUTHENTICATIONFAILED] Authentication failed"
        assert open(slapd.log_path).read()[start:].count('BIND dn="cn=John Doe') == binds
    assert last_auth(s, "jdoe")["reason"] in ("penalty_client_address", "penalty_login_name")
    # another client address is penalised for the same login name
    with Wire(s["imaps"], tls_context=tls_ctx, source="127.0.0.9") as w:
        w.line()
        assert w.command("c1", "LOGIN jdoe %s" % PW)[-1].startswith("c1 NO")
        assert last_auth(s, "jdoe")["reason"] == "penalty_login_name"
        # ... and the penalised address is refused for other names too
    with Wire(s["imaps"], tls_context=tls_ctx) as w:
        w.line()
        assert w.command("d1", "LOGIN asmith@example.test %s" % PW)[-1].startswith("d1 NO")
        assert last_auth(s, "asmith@example.test")["reason"] == "penalty_client_address"
    time.sleep(1.3)  # the first penalty is 1 s
    ok, _, _ = imap_login(s, tls_ctx, "jdoe")
    assert ok


def test_max_connections_per_user(slapd, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, imap_extra="MaxConnectionsPerUser 2",
                    global_extra=postern.directory_block(slapd, d))
    held = []
    for i in range(2):
        w = Wire(s["imaps"], tls_context=tls_ctx)
        w.line()
        assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
        held.append(w)
    with Wire(s["imaps"], tls_context=tls_ctx) as w:
        w.line()
        # the same account under another name is the same account
        reply = w.command("b", 'LOGIN "EXAMPLE\\\\jdoe" %s' % PW)
        assert reply[-1] == "b NO [LIMIT] Too many sessions for this account", reply
    assert last_auth(s, "EXAMPLE\\jdoe")["reason"] == "session_limit"
    # POP3 counts its own sessions
    p = poplib.POP3_SSL("127.0.0.1", s["pop3s"], context=tls_ctx)
    p.user("jdoe")
    assert p.pass_(PW).startswith(b"+OK")
    p.quit()
    held.pop().close()
    deadline = time.monotonic() + 5
    while not imap_login(s, tls_ctx, "jdoe")[0]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for w in held:
        w.close()


def test_audit_records_also_go_to_syslog(slapd, server_tls, tls_ctx, tmp_path):
    """AuditSyslog yes: the same JSON record reaches syslog (a private /dev/log: posternd runs
    in its own mount namespace whose /dev holds our datagram socket)."""
    import json
    import shutil
    import socket
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private /dev/log")
    d = new_dir()
    fakedev = os.path.join(d, "dev")
    os.makedirs(fakedev)
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(os.path.join(fakedev, "log"))
    os.chmod(os.path.join(fakedev, "log"), 0o666)
    receiver.settimeout(10)
    s = postern.Posternd(server_tls, directory=d,
                         global_extra="AuditSyslog yes\n" + postern.directory_block(slapd, d))
    s.write_config()
    script = ("set -e; mount --make-rprivate /; "
              "for f in null zero random urandom; do touch %(dev)s/$f; "
              "mount --bind /dev/$f %(dev)s/$f; done; mount --bind %(dev)s /dev; "
              "exec %(bin)s -f -c %(conf)s") % {"dev": fakedev, "bin": postern.binary(),
                                                  "conf": s.conf}
    from tests.lab import daemon
    s.proc = daemon.spawn(["unshare", "-m", "sh", "-c", script], s.log)
    try:
        daemon.wait_ready(s.proc, s.ready, "posternd", s.log)
        assert imap_login(s, tls_ctx, "jdoe")[0]
        deadline = time.monotonic() + 10
        records = []
        while time.monotonic() < deadline:
            msg = receiver.recv(65536).decode("utf-8", "replace")
            if '"event":"auth"' in msg:
                records.append(json.loads(msg[msg.index("{"):]))
                break
        assert records and records[0]["login"] == "jdoe" and records[0]["result"] == "allow"
        # <facility authpriv (10) * 8 + info (6)> = 86
        assert msg.startswith("<86>"), msg[:20]
    finally:
        s.stop()
        receiver.close()


def test_protocol_enablement_by_group_and_filter(slapd, server_tls, tls_ctx, make_server):
    """POLICY.md §4: an administrator's own rule for who may use a protocol."""
    d = new_dir()
    s = make_server(
        directory=d,
        imap_extra='AllowGroup "cn=MailUsers,ou=Staff,dc=example,dc=test"',
        pop3_extra='AccountFilter "(|(mail=john.doe@example.test)(mail=anna.*))"',
        global_extra=postern.directory_block(slapd, d))
    before = slapd_binds(slapd)
    # IMAP: jdoe is a direct member of MailUsers; dup1 is not
    assert imap_login(s, tls_ctx, "jdoe")[0]
    assert not imap_login(s, tls_ctx, "dup1")[0]
    ev = last_auth(s, "dup1")
    assert ev["reason"] == "protocol_not_allowed" and ev["account"] == "dup1"
    # refused before the password was tried: only jdoe's bind reached slapd
    assert slapd_binds(slapd) - before == 1
    # POP3: the filter lets jdoe and asmith (anna.smith@...) in, not dup2
    assert pop3_login(s, tls_ctx, "asmith@example.test")
    assert not pop3_login(s, tls_ctx, "dup2")
    assert last_auth(s, "dup2")["reason"] == "protocol_not_allowed"
    assert not pop3_login(s, tls_ctx, "dup1")
    # and asmith, a member of MailUsers only through the nested group Sales, is refused on
    # OpenLDAP, whose memberOf lists direct groups (AD's nesting: test_auth_ad)
    assert not imap_login(s, tls_ctx, "asmith@example.test")[0]
    assert last_auth(s, "asmith@example.test")["reason"] == "protocol_not_allowed"


def test_invalid_enablement_rules_are_configuration_errors(server_tls, tmp_path):
    for extra, message in (('AccountFilter "mail=*"', "not an LDAP filter"),
                           ('AccountFilter "(mail=*))("', "not an LDAP filter"),
                           ('AllowGroup "MailUsers"', "not a distinguished name")):
        s = postern.Posternd(server_tls, directory=new_dir(), imap_extra=extra)
        s.write_config()
        status, out = postern.check_config(s.conf)
        assert status != 0 and message in out, (extra, out)


def test_reload_rereads_a_rotated_service_password(slapd, server_tls, tls_ctx, make_server):
    """The service password changes in the directory and in BindPasswordFile; SIGHUP makes
    postern read the file again (its stat changed) and bind with the new one."""
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(slapd, d))
    secret = os.path.join(d, "ldap.secret")
    os.chmod(secret, 0o644)  # a reload reads it as User (nobody)
    assert imap_login(s, tls_ctx, "jdoe")[0]
    rotated = "Rotated-Service-Pass-7"

    def set_service_password(pw):
        slapd.modify("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n"
                     % (slapd.service_dn, pw))
    try:
        set_service_password(rotated)
        with open(secret, "w") as f:
            f.write(rotated + "\n")
        start = os.path.getsize(slapd.log_path)
        s.reload()
        assert "reload failed" not in s.log_text()
        assert imap_login(s, tls_ctx, "jdoe")[0]
        time.sleep(0.2)
        with open(slapd.log_path, errors="replace") as f:
            f.seek(start)
            log = f.read()
        # new lookup connections bound as the service account with the new password
        conns = re.findall(r'conn=(\d+) op=\d+ BIND dn="%s" method=128' % re.escape(slapd.service_dn),
                           log)
        assert conns, "no service bind after the reload"
        assert any(re.search(r"conn=%s op=\d+ RESULT tag=97 err=0" % c, log) for c in conns)
        # a reload without any change keeps the running client: no new service bind
        start = os.path.getsize(slapd.log_path)
        s.reload()
        assert imap_login(s, tls_ctx, "jdoe")[0]
        time.sleep(0.2)
        with open(slapd.log_path, errors="replace") as f:
            f.seek(start)
            assert 'BIND dn="%s"' % slapd.service_dn not in f.read()
    finally:
        set_service_password(slapd.service_pw)
    assert rotated not in s.log_text()
