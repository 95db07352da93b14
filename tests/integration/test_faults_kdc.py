"""KDC faults: the Kerberos KDC killed (SIGKILL) or hung (SIGSTOP) in the middle of things.

postern meets a KDC in two places. Its GSSAPI acceptor (AUTHENTICATE GSSAPI, AUTH GSSAPI)
checks the client's ticket with its own keytab and never asks the KDC. Its directory client,
when the service account binds by SASL GSSAPI (BindKeytab), gets a TGT and an ldap/<host>
ticket from the KDC for a new LDAP connection, unless its ticket cache still holds them.

A realm of its own (a MIT KDC this module may kill, restart on the same port with the same
keys, and freeze), a slapd that accepts GSSAPI binds, and posternd with BindKeytab and a
kerberos block; real clients (python-gssapi, imaplib, poplib).
"""
import base64
import imaplib
import os
import poplib
import re
import shutil
import signal
import threading
import time

import pytest

from tests.lab import Kdc, daemon, postern, sso
from tests.lab.slapd import Slapd
from tests.lab.wire import Wire
# python-gssapi reads KRB5_CONFIG / KRB5CCNAME from the environment: put them back afterwards
from tests.integration.test_sso_gssapi import kerberos_environment  # noqa: F401

PW = "Demo-Pass-1"
HOST = "mail.example.test"


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    """A KDC of this module's own (the session's `kdc` must stay up for other modules)."""
    kdc = Kdc(tmp_path_factory.mktemp("kdc-faults"), service_host=HOST)
    kdc.start()
    try:
        yield kdc
    finally:
        kdc.stop()


@pytest.fixture(scope="module")
def files(realm):
    """World-readable krb5.conf and CA; root-only keytabs (posternd reads them at start)."""
    d = postern.public_dir("posternd-kdcfault-")
    conf = os.path.join(d, "krb5.conf")
    shutil.copy(realm.krb5_conf, conf)
    os.chmod(conf, 0o644)
    bind_keytab = realm.add_keys(["svc-postern"], os.path.join(d, "directory.keytab"))
    service_keytab = os.path.join(d, "service.keytab")
    shutil.copy(realm.keytab, service_keytab)
    for k in (bind_keytab, service_keytab):
        os.chmod(k, 0o600)
    return {"dir": d, "krb5_conf": conf, "bind_keytab": bind_keytab,
            "service_keytab": service_keytab}


@pytest.fixture(scope="module")
def gslapd(realm, tmp_path_factory):
    d = tmp_path_factory.mktemp("slapd-kdcfault")
    keytab = realm.add_keys(["ldap/localhost"], str(d / "ldap.keytab"))
    with Slapd(d / "slapd", kerberos=(realm.krb5_conf, keytab)) as ldap:
        yield ldap


def start_server(gslapd, files, server_tls, ticket_lifetime=None):
    """posternd: lookups as svc-postern@EXAMPLE.TEST by SASL GSSAPI (no password anywhere),
    GSSAPI logins with imap/ and pop/<HOST> keys."""
    d = postern.public_dir("posternd-kdcfault-")
    block = postern.directory_block(gslapd, d, uris=["ldap://localhost:%d" % gslapd.port],
                                    tls="none")
    block = re.sub(r"\n    BindDN .*\n    BindPasswordFile .*\n",
                   "\n    BindKeytab %s\n" % files["bind_keytab"], block)
    assert "BindKeytab" in block and "BindDN" not in block
    block += "kerberos {\n    Keytab %s\n    HostName %s\n}\n" % (files["service_keytab"], HOST)
    s = postern.Posternd(server_tls, directory=d, global_extra=block)
    conf = files["krb5_conf"]
    if ticket_lifetime:   # the service account's tickets expire while the test watches
        conf = os.path.join(d, "krb5.conf")
        with open(files["krb5_conf"]) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("[libdefaults]\n",
                                 "[libdefaults]\n\tticket_lifetime = %s\n" % ticket_lifetime))
        os.chmod(conf, 0o644)
    env = dict(os.environ, KRB5_CONFIG=conf)
    for k in ("KRB5CCNAME", "KRB5_KTNAME", "KRB5_CLIENT_KTNAME"):
        env.pop(k, None)
    s.proc = daemon.spawn([postern.binary(), "-f", "-c", s.conf], s.log, env=env)
    daemon.wait_ready(s.proc, s.ready, "posternd", s.log)
    return s


@pytest.fixture
def server(gslapd, files, server_tls):
    s = start_server(gslapd, files, server_tls)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ccache(realm, files):
    """jdoe's TGT and his imap/ and pop/ service tickets, fetched while the KDC is up."""
    cc = os.path.join(files["dir"], "cc.jdoe")
    assert realm.kinit("jdoe", PW, cc).returncode == 0
    daemon.run(["kvno", "imap/" + HOST, "pop/" + HOST],
               env=dict(os.environ, KRB5_CONFIG=realm.krb5_conf, KRB5CCNAME="FILE:" + cc),
               what="kvno")
    return cc


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def login(server, ctx, user="jdoe", password=PW, timeout=60):
    """(ok, text, seconds) of one IMAP LOGIN over implicit TLS."""
    t0 = time.monotonic()
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=timeout)
    try:
        m.login(user, password)
        return True, "OK", time.monotonic() - t0
    except imaplib.IMAP4.error as e:
        return False, str(e), time.monotonic() - t0
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def auth_events(server):
    time.sleep(0.05)
    return [e for e in server.audit_events() if e["event"] == "auth"]


def gss(realm, cc, service="imap"):
    return sso.GssClient(cc, realm.krb5_conf, service=service, host=HOST)


@pytest.fixture(autouse=True)
def kdc_back(realm):
    """Every test leaves the KDC as it found it: running, on the same port, same keys."""
    yield
    if realm.running:
        os.kill(realm.pid, signal.SIGCONT)
    else:
        realm.kill()
        realm.start(fresh=False)


def restart_slapd(gslapd):
    """slapd killed and back on the same port and data: pooled connections must be made anew."""
    os.kill(gslapd.pid, signal.SIGKILL)
    gslapd._proc.wait()
    gslapd._proc = None
    gslapd.start(fresh=False)


def settle_fds(server, limit, timeout=5.0):
    deadline = time.monotonic() + timeout
    while fd_count(server.pid) > limit and time.monotonic() < deadline:
        time.sleep(0.05)
    return fd_count(server.pid)


# ---- the acceptor: tickets are checked with the keytab, the KDC is not asked -----------------

def test_kdc_killed_mid_gssapi_exchange(realm, server, tls_ctx, ccache):
    """IMAP (SASL-IR, the KDC killed after the first round trip) and POP3 (the KDC killed
    between the client's ticket and AUTH): both complete, one audit event each."""
    assert login(server, tls_ctx)[0]   # the directory's own tickets, while the KDC is up
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        c = gss(realm, ccache)
        w.send("a AUTHENTICATE GSSAPI %s\r\n" % base64.b64encode(c.initial()).decode())
        line = w.line()
        assert line.startswith("+ "), line
        realm.kill()
        while line.startswith("+"):
            w.send(base64.b64encode(c(base64.b64decode(line[2:]))).decode() + "\r\n")
            line = w.line()
        assert line.startswith("a OK"), line
        assert w.command("b", "NOOP")[-1].startswith("b OK")
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx)
    ok, line = sso.pop3_auth(p, "GSSAPI", gss(realm, ccache, service="pop"))
    assert ok, line
    p.quit()
    events = [e for e in auth_events(server) if e["mechanism"] == "GSSAPI"]
    assert [(e["protocol"], e["result"]) for e in events] == [("imap", "allow"),
                                                               ("pop3", "allow")], events
    assert server.proc.poll() is None


def test_client_dying_mid_gssapi_exchange(realm, server, tls_ctx, ccache):
    """Clients that close after their first token: sessions and descriptors go, the next
    GSSAPI login works."""
    assert login(server, tls_ctx)[0]
    server.wait_no_sessions()
    fds = fd_count(server.pid)
    for i in range(5):
        port = server["imaps"] if i % 2 == 0 else server["pop3s"]
        w = Wire(port, tls_context=tls_ctx)
        w.line()
        if port == server["imaps"]:
            w.send("a AUTHENTICATE GSSAPI %s\r\n"
                   % base64.b64encode(gss(realm, ccache).initial()).decode())
        else:
            w.send("AUTH GSSAPI\r\n")
            assert w.line().startswith("+")
            w.send(base64.b64encode(gss(realm, ccache, "pop").initial()).decode() + "\r\n")
        assert w.line().startswith("+ ")    # the server's token: mid-exchange
        w.sock.close()                      # no goodbye, no TLS close_notify
    server.wait_no_sessions()
    assert settle_fds(server, fds) <= fds, (fds, fd_count(server.pid))
    assert not [e for e in auth_events(server) if e["result"] == "allow"
                and e["mechanism"] == "GSSAPI"]
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    m.authenticate("GSSAPI", gss(realm, ccache))
    assert m.noop()[0] == "OK"
    m.logout()
    assert server.proc.poll() is None


# ---- the directory's service account: SASL GSSAPI bind with tickets from the KDC ------------

def test_kdc_killed_before_the_directory_connects(realm, server, tls_ctx):
    """No ticket yet and no KDC: refused at once with [UNAVAILABLE]; the KDC back on its port,
    the next login works."""
    realm.kill()
    ok, text, took = login(server, tls_ctx)
    assert not ok and "[UNAVAILABLE]" in text and took < 2, (text, took)
    ev = auth_events(server)[-1]
    assert ev["result"] == "deny" and ev["reason"] == "directory_unavailable", ev
    assert "no Kerberos credentials for svc-postern@EXAMPLE.TEST" in server.log_text()
    realm.start(fresh=False)
    ok, text, took = login(server, tls_ctx)
    assert ok and took < 2, (text, took)


def test_kdc_hung_before_the_directory_connects(realm, server, tls_ctx):
    """A frozen KDC (SIGSTOP: it accepts, never answers) and six logins at once: libkrb5 waits
    ~27 s for it in up to PoolSize (4) connects; the other logins get [UNAVAILABLE] when no
    lookup connection came free in NetworkTimeout + OperationTimeout (5 s), not after the
    first ones, one by one; I/O threads answer throughout. Once it is thawed, everything
    goes on."""
    before = fd_count(server.pid)
    os.kill(realm.pid, signal.SIGSTOP)
    results = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(login(server, tls_ctx)))
               for _ in range(6)]
    for t in threads:
        t.start()
    worst = 0.0
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        for k in range(30):   # 6 s
            t0 = time.monotonic()
            assert w.command("n%d" % k, "NOOP")[-1].startswith("n%d OK" % k)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.2)
    assert worst < 0.5, "an I/O thread waited %.2f s" % worst
    early = list(results)
    assert len(early) == 2, early       # the ones without a connection slot ...
    assert all(not ok and "[UNAVAILABLE]" in text and 4.5 < took < 6.5
               for ok, text, took in early), early
    os.kill(realm.pid, signal.SIGCONT)
    thawed = time.monotonic()
    for t in threads:
        t.join(timeout=30)
    # ... and the ones that were waiting for the KDC, which now answers
    assert len(results) == 6 and time.monotonic() - thawed < 3, results
    late = results[2:]
    assert all(ok or "[UNAVAILABLE]" in text for ok, text, _ in late), late
    ok, text, took = login(server, tls_ctx)
    assert ok and took < 2, (text, took)
    events = auth_events(server)
    assert len(events) == 7, events
    assert {e["reason"] for e in events if e["result"] == "deny"} <= {"directory_unavailable"}
    assert time.monotonic() - started < 15
    assert settle_fds(server, before + 8) <= before + 8, (before, fd_count(server.pid))
    assert server.proc.poll() is None


def test_tickets_expiring_while_the_kdc_is_down(realm, gslapd, files, server_tls, tls_ctx):
    """Tickets of 4 s. While valid, a new directory connection needs no KDC; expired and the
    KDC dead, it fails with [UNAVAILABLE] (directory_error: the service account's credentials
    could not be had); with the KDC back, the next connection gets new tickets from the
    keytab (before the fix, every new connection failed with "Ticket expired" for good)."""
    s = start_server(gslapd, files, server_tls, ticket_lifetime="4s")
    try:
        assert login(s, tls_ctx)[0]
        fds = fd_count(s.pid)
        realm.kill()
        restart_slapd(gslapd)
        ok, text, _ = login(s, tls_ctx)
        assert ok, text                   # the cached TGT and ldap/ ticket are enough
        time.sleep(4.5)
        restart_slapd(gslapd)
        ok, text, took = login(s, tls_ctx)
        assert not ok and "[UNAVAILABLE]" in text and took < 2, (text, took)
        ev = auth_events(s)[-1]
        assert ev["result"] == "deny" and ev["reason"] == "directory_error", ev
        assert "directory: the Kerberos tickets of svc-postern@EXAMPLE.TEST expired and the " \
               "KDC gave no new ones for the keys of %s" % files["bind_keytab"] in s.log_text()
        assert s.proc.poll() is None
        realm.start(fresh=False)
        ok, text, took = login(s, tls_ctx)
        assert ok and took < 2, (text, took)
        assert settle_fds(s, fds + 8) <= fds + 8, (fds, fd_count(s.pid))
    finally:
        s.stop()
