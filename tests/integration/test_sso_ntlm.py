# NTLM against the Samba AD DC through a pool of ntlm_auth helpers (winbind), with real clients.
"""posternd runs in a mount namespace where /run/samba/winbindd is the lab DC's winbindd, so
its ntlm_auth helpers (squid-2.5-ntlmssp) verify through the DC. The account is resolved and
checked by postern's own policy before the AUTHENTICATE message reaches the DC: blocked
accounts are refused without asking (no oracle, no lockout), the DC's verdict comes back as
NT_STATUS and becomes the audit reason and code. Clients: python-ntlm-auth (NTLMv2), curl,
and the gsasl CLI (libntlm's NTLMv1, refused). A helper killed in the middle of an exchange
fails that attempt only; the next login gets a new helper.
"""
import base64
import imaplib
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

from tests.lab import postern, sso
from tests.lab.wire import Wire

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ntlm_auth") or not shutil.which("unshare"),
    reason="needs root, ntlm_auth (winbind) and unshare (make deps)")

PW = "Demo-Pass-1"


@pytest.fixture(scope="module")
def winbind(samba_dc):
    undo = samba_dc.open_winbind_privileged(sso.unprivileged_gid())
    yield samba_dc
    undo()


def ntlm_block(dc, extra=""):
    return "ntlm {\n    HelperOption --configfile=%s\n%s}\n" % (dc.conf_path, extra)


@pytest.fixture(scope="module")
def server(winbind, server_tls):
    s = sso.SsoServer(winbind, server_tls, winbind.krb5_conf(), ntlm_block(winbind),
                      logins="FailureDelay 0s\n    BlockPrivilegedAccounts yes", mail=True)
    s.start()
    yield s
    s.stop()


def imap_ntlm(server, tls_ctx, user, password=PW, domain="CORP"):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    try:
        m.authenticate("NTLM", sso.ntlm_client(user, password, domain))
        return True, ""
    except imaplib.IMAP4.error as e:
        return False, str(e)
    finally:
        m.logout()


def last_auth(server, login=None):
    time.sleep(0.05)
    events = [e for e in server.audit_events() if e["event"] == "auth" and
              (login is None or e["login"] == login)]
    assert events, "no audit event for %r" % login
    return events[-1]


def test_imap_ntlmv2_login(server, tls_ctx):
    ok, text = imap_ntlm(server, tls_ctx, "jdoe")
    assert ok, text
    ev = last_auth(server, "CORP\\jdoe")
    assert ev["result"] == "allow" and ev["mechanism"] == "NTLM", ev
    assert ev["account"] == "jdoe" and ev["form"] == "ntlm-identity", ev


def test_upn_with_an_empty_domain(server, tls_ctx):
    ok, text = imap_ntlm(server, tls_ctx, "jdoe@corp.example.test", domain="")
    assert ok, text
    assert last_auth(server, "jdoe@corp.example.test")["account"] == "jdoe"


def ntlm_over_wire(w, tag, respond, initial=True, command="AUTHENTICATE"):
    neg = respond(b"")
    prefix = "%s %s" % (tag, command) if tag else command
    if initial:
        w.send("%s NTLM %s\r\n" % (prefix, base64.b64encode(neg).decode()))
    else:
        w.send("%s NTLM\r\n" % prefix)
        assert w.line() == "+ "
        w.send(base64.b64encode(neg).decode() + "\r\n")
    while True:
        line = w.line()
        if (tag and line.startswith(tag + " ")) or line.startswith("+OK") or \
                line.startswith("-ERR"):
            return line
        if line.startswith("* "):
            continue
        assert line.startswith("+ "), line
        w.send(base64.b64encode(respond(base64.b64decode(line[2:]))).decode() + "\r\n")


def test_imap_starttls_with_negotiate_as_initial_response(server, tls_ctx):
    with Wire(server["imap"]) as w:
        w.line()
        w.command("a", "STARTTLS")
        w.starttls(tls_ctx)
        assert "AUTH=NTLM" in w.command("b", "CAPABILITY")[0]
        assert ntlm_over_wire(w, "c", sso.ntlm_client("asmith", PW)).startswith("c OK")


def test_pop3_with_and_without_initial_response(server, tls_ctx):
    for initial in (False, True):
        with Wire(server["pop3s"], tls_context=tls_ctx) as w:
            w.line()
            line = ntlm_over_wire(w, "", sso.ntlm_client("jdoe", PW), initial=initial,
                                  command="AUTH").strip()
            assert line.startswith("+OK"), line
            w.send("QUIT\r\n")   # the maildrop's lock goes with the session
            assert w.line().startswith("+OK")
    assert last_auth(server, "CORP\\jdoe")["protocol"] == "pop3"


@pytest.mark.parametrize("user,password,reason,status", [
    ("jdoe", "Wrong-Pass-9", "invalid_credentials", "c000006d"),
    ("hours1", PW, "logon_hours", "c000006f"),
    ("ws1", PW, "workstation_restriction", "c0000070"),
])
def test_the_dcs_verdict_is_the_audit_reason(server, tls_ctx, user, password, reason, status):
    ok, text = imap_ntlm(server, tls_ctx, user, password)
    assert not ok and "[AUTHENTICATIONFAILED]" in text, text
    ev = last_auth(server, "CORP\\" + user)
    assert ev["reason"] == reason and ev["ad_subcode"] == status, ev


@pytest.mark.parametrize("user,reason", [("disabled1", "account_disabled"),
                                         ("locked1", "account_locked"),
                                         ("expired1", "account_expired"),
                                         ("mustchange1", "password_must_change"),
                                         ("pwexpired1", "password_expired"),
                                         ("Administrator", "builtin_administrator"),
                                         ("krbtgt", "krbtgt_account"),
                                         ("dadmin", "privileged_account"),
                                         ("noimap1", "protocol_disabled")])
def test_blocked_accounts_never_reach_the_dc(server, tls_ctx, winbind, user, reason):
    before = len([l for l in winbind.auth_log() if "NTLM" in l and user in l.lower()])
    ok, text = imap_ntlm(server, tls_ctx, user)
    assert not ok, text
    ev = last_auth(server, "CORP\\" + user)
    assert ev["reason"] == reason and "ad_subcode" not in ev, ev
    after = len([l for l in winbind.auth_log() if "NTLM" in l and user in l.lower()])
    assert after == before   # the AUTHENTICATE never went to the DC


def test_unknown_domain(server, tls_ctx):
    ok, _ = imap_ntlm(server, tls_ctx, "jdoe", domain="EVIL")
    assert not ok
    assert last_auth(server, "EVIL\\jdoe")["reason"] == "unknown_domain"


def test_secure_login_refuses_ntlm_before_tls(server):
    with Wire(server["imap"]) as w:
        w.line()
        assert "AUTH=NTLM" not in w.command("a", "CAPABILITY")[0]
        line = w.command("b", "AUTHENTICATE NTLM")[-1]
        assert line.startswith("b NO [PRIVACYREQUIRED]"), line
    assert last_auth(server)["reason"] == "plaintext_requires_tls"


def test_plaintext_authentication_allows_ntlm_in_clear_text(winbind, server_tls):
    s = sso.SsoServer(winbind, server_tls, winbind.krb5_conf(), ntlm_block(winbind),
                      imap_extra="LoginType plaintext-authentication")
    s.start()
    try:
        with Wire(s["imap"]) as w:
            w.line()
            caps = w.command("a", "CAPABILITY")[0]
            assert "AUTH=NTLM" in caps and "AUTH=PLAIN" not in caps, caps
            assert ntlm_over_wire(w, "b", sso.ntlm_client("jdoe", PW)).startswith("b OK")
        assert not last_auth(s, "CORP\\jdoe")["tls"]
    finally:
        s.stop()


def test_curl(server, test_ca):
    done = subprocess.run(["curl", "-sS", "--max-time", "10", "--login-options", "AUTH=NTLM",
                           "-u", "CORP\\jdoe:" + PW, "--cacert", test_ca["cert"],
                           "imaps://localhost:%d/" % server["imaps"]],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    ev = last_auth(server, "CORP\\jdoe")
    assert ev["result"] == "allow", ev


def test_gsasl_ntlmv1_is_refused(server, test_ca):
    """libntlm (the gsasl CLI) answers with NTLMv1: refused before any helper sees it."""
    done = subprocess.run(["gsasl", "--imap", "--mechanism=NTLM", "-a", "jdoe", "-p", PW,
                           "-r", "CORP", "--x509-ca-file=" + test_ca["cert"], "localhost",
                           str(server["imap"])], capture_output=True, text=True, timeout=20,
                          input="")
    assert done.returncode != 0
    ev = last_auth(server)
    assert ev["mechanism"] == "NTLM" and ev["reason"] == "ntlmv1_refused", ev


def test_garbage_anonymous_and_cancel(server, tls_ctx):
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        assert w.command("a", "AUTHENTICATE NTLM AAAA")[-1].startswith("a BAD")
        assert last_auth(server)["reason"] == "invalid_input"
        # an anonymous AUTHENTICATE: every field empty
        w.send("b AUTHENTICATE NTLM %s\r\n"
               % base64.b64encode(sso.ntlm_client("x", "y")(b"")).decode())
        assert w.line().startswith("+ ")
        anon = b"NTLMSSP\0" + struct.pack("<I", 3) + struct.pack("<HHI", 0, 0, 64) * 6 + \
            struct.pack("<I", 0x00000001)
        w.send(base64.b64encode(anon).decode() + "\r\n")
        assert w.until_tagged("b")[-1].startswith("b NO")
        assert last_auth(server)["reason"] == "ntlm_anonymous"
        w.send("c AUTHENTICATE NTLM\r\n")
        assert w.line() == "+ "
        w.send("*\r\n")
        assert w.until_tagged("c")[-1].startswith("c BAD")
        assert ntlm_over_wire(w, "d", sso.ntlm_client("jdoe", PW)).startswith("d OK")


def test_a_helper_killed_mid_exchange_fails_that_attempt_only(server, tls_ctx):
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        respond = sso.ntlm_client("jdoe", PW)
        w.send("a AUTHENTICATE NTLM %s\r\n" % base64.b64encode(respond(b"")).decode())
        line = w.line()
        assert line.startswith("+ "), line
        killed = server.helper_pids()
        assert killed
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        w.send(base64.b64encode(respond(base64.b64decode(line[2:]))).decode() + "\r\n")
        line = w.until_tagged("a")[-1]
        # a server-side failure, not a verdict on the credentials: the client may retry
        assert line.startswith("a NO [UNAVAILABLE]"), line
    ev = last_auth(server, "CORP\\jdoe")
    assert ev["reason"] == "ntlm_helper_unavailable", ev
    ok, text = imap_ntlm(server, tls_ctx, "jdoe")
    assert ok, text
    assert not set(killed) & set(server.helper_pids())
    assert "ntlm: helper pid %d exited" % killed[0] in server.log_text() or \
        "does not take requests" in server.log_text()


def test_the_pool_is_bounded(winbind, server_tls, tls_ctx):
    """Helpers 2, WorkerThreads 2: two exchanges hold the helpers, a third waits for one (one
    worker may wait), a fourth is refused at once; when the first ends, the third goes on."""
    s = sso.SsoServer(winbind, server_tls, winbind.krb5_conf(),
                      "WorkerThreads 2\n" + ntlm_block(winbind, "    Helpers 2\n"))
    s.start()
    try:
        wires, clients = {}, {}
        for tag in "abcd":
            w = Wire(s["imaps"], tls_context=tls_ctx)
            w.line()
            c = sso.ntlm_client("jdoe", PW)
            w.send("%s AUTHENTICATE NTLM %s\r\n" % (tag, base64.b64encode(c(b"")).decode()))
            wires[tag], clients[tag] = w, c
            if tag in "ab":   # one after the other: each holds its helper
                clients[tag].challenge = w.line()
                assert clients[tag].challenge.startswith("+ ")
            time.sleep(0.2 if tag == "c" else 0)
        assert wires["d"].line().startswith("d NO [UNAVAILABLE]")
        assert last_auth(s)["reason"] == "ntlm_helper_unavailable"
        with pytest.raises(TimeoutError):
            wires["c"].line(timeout=0.3)    # c is still waiting
        for tag in "ac":
            w, c = wires[tag], clients[tag]
            line = c.challenge if tag == "a" else w.line()
            assert line.startswith("+ "), line
            w.send(base64.b64encode(c(base64.b64decode(line[2:]))).decode() + "\r\n")
            assert w.until_tagged(tag)[-1].startswith(tag + " OK")
        for w in wires.values():
            w.close()
        assert len(s.helper_pids()) == 2
    finally:
        s.stop()


def test_a_client_that_never_answers_gives_its_helper_back(winbind, server_tls, tls_ctx):
    """Helpers 1, HelperTimeout 2s: a silent client holds the only helper for two seconds, not
    for the connection's whole idle timeout (another client waits for it meanwhile); its late
    AUTHENTICATE is refused."""
    s = sso.SsoServer(winbind, server_tls, winbind.krb5_conf(),
                      ntlm_block(winbind, "    Helpers 1\n    HelperTimeout 2s\n"))
    s.start()
    try:
        slow = Wire(s["imaps"], tls_context=tls_ctx)
        slow.line()
        c = sso.ntlm_client("jdoe", PW)
        slow.send("a AUTHENTICATE NTLM %s\r\n" % base64.b64encode(c(b"")).decode())
        challenge = slow.line()
        assert challenge.startswith("+ "), challenge
        t0 = time.monotonic()
        ok, text = imap_ntlm(s, tls_ctx, "asmith")   # waits for the only helper, which comes back
        assert ok, text
        assert 1 < time.monotonic() - t0 < 8
        slow.send(base64.b64encode(c(base64.b64decode(challenge[2:]))).decode() + "\r\n")
        assert slow.until_tagged("a")[-1].startswith("a NO")
        assert last_auth(s)["reason"] == "ntlm_helper_unavailable"
        assert "no AUTHENTICATE in time" in s.log_text()
        slow.close()
    finally:
        s.stop()


def test_posternd_t_refuses_a_missing_helper(winbind, server_tls):
    s = sso.SsoServer(winbind, server_tls, winbind.krb5_conf(),
                      "ntlm {\n    Helper /nonexistent/ntlm_auth\n}\n")
    code, out = postern.check_config(s.conf)
    assert code != 0 and "Helper /nonexistent/ntlm_auth: No such file" in out, out
