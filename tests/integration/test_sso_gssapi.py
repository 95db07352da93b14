# Kerberos single sign-on against the Samba AD DC: join with adcli, kinit, GSSAPI with real clients.
"""postern is joined to CORP.EXAMPLE.TEST the documented way (docs/join.md: `adcli join`
with imap/ and pop/ SPNs for mail.corp.example.test and a 0600 keytab), users kinit against
the DC's KDC, and python-gssapi, curl and the gsasl CLI log in over IMAP (implicit TLS and
STARTTLS) and POP3. Refusals: accounts the DC still gives tickets to but postern blocks
(privileged, protocol disabled, disabled / expired / locked after the ticket was issued),
a principal of another realm, an authorization identity of another mailbox, tickets for
another service, garbage, truncated and replayed tokens. Each is audited with its reason.
Kerberos needs no DNS here: clients and posternd use a krb5.conf naming the KDC by address.
"""
import base64
import imaplib
import os
import poplib
import shutil
import subprocess
import time

import pytest

from tests.lab import daemon, postern, sso
from tests.lab import tls as tls_lab
from tests.lab.wire import Wire

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("adcli") or not shutil.which("unshare"),
    reason="needs root, adcli and unshare (make deps)")

HOST = "mail.corp.example.test"
PW = "Demo-Pass-1"
# accounts made for this module: they get a ticket first and are then blocked in AD
LATE = ("ssodis1", "ssoexp1", "ssolock1")


@pytest.fixture(scope="module", autouse=True)
def kerberos_environment():
    """python-gssapi is pointed at ccaches through the environment: put it back afterwards."""
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5CCNAME")}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def realm(samba_dc):
    """The join, a client krb5.conf and a kinit'ed ccache per user."""
    d = postern.public_dir("sso-realm-")
    keytab = samba_dc.join(os.path.join(d, "postern.keytab"))
    krb5_conf = samba_dc.krb5_conf(os.path.join(d, "krb5.conf"))
    _make_late_accounts(samba_dc)
    caches = {}
    for user in ("jdoe", "asmith", "dadmin", "noimap1", "nopop1") + LATE:
        cc = os.path.join(d, "cc." + user)
        done = samba_dc.kinit(user, PW, cc, krb5_conf)
        assert done.returncode == 0, done.stderr
        caches[user] = cc
    # the service tickets too: the DC's KDC refuses them once an account is blocked
    for user in LATE:
        daemon.run(["kvno", "imap/" + HOST, "pop/" + HOST],
                   env=dict(os.environ, KRB5_CONFIG=krb5_conf, KRB5CCNAME="FILE:" + caches[user]),
                   what="kvno")
    # blocked in AD after their tickets were issued: the tickets stay valid (AD behaves so)
    samba_dc.modify("dn: %s\nchangetype: modify\nreplace: userAccountControl\n"
                    "userAccountControl: 514\n" % samba_dc.dn_of("ssodis1"))
    samba_dc.modify("dn: %s\nchangetype: modify\nreplace: accountExpires\naccountExpires: %d\n"
                    % (samba_dc.dn_of("ssoexp1"), 116444736000000000 + 10**7 * 86400))
    for _ in range(3):
        samba_dc.bind("ssolock1@" + samba_dc.domain, "Wrong-Pass-0")
    return {"dir": d, "keytab": keytab, "krb5_conf": krb5_conf, "cc": caches}


def _make_late_accounts(dc):
    for user in LATE:
        if not dc.search("(sAMAccountName=%s)" % user, ["1.1"]):
            daemon.run(["samba-tool", "user", "create", user, PW, "-s", dc.conf_path],
                       what="samba-tool user create")
    # ssolock1 locks after two bad passwords, like locked1 (the lab's lockout PSO)
    pso = "CN=postern-lockout,CN=Password Settings Container,CN=System," + dc.base_dn
    applies = dc.search("(objectClass=msDS-PasswordSettings)", ["msDS-PSOAppliesTo"], base=pso,
                        scope="base")[0].text("msDS-PSOAppliesTo")
    dn = dc.dn_of("ssolock1")
    if dn not in applies:
        dc.modify("dn: %s\nchangetype: modify\nadd: msDS-PSOAppliesTo\nmsDS-PSOAppliesTo: %s\n"
                  % (pso, dn))


@pytest.fixture(scope="module")
def mail_tls(test_ca):
    """A server certificate for mail.corp.example.test (curl checks the name)."""
    cert, key = tls_lab.make_server_cert(test_ca["dir"], test_ca["cert"], test_ca["key"],
                                         stem="mail-corp", dns_names=(HOST, "localhost"))
    return tls_lab.TlsFiles(test_ca["cert"], test_ca["key"], cert, key)


def kerberos_block(realm, extra=""):
    return "kerberos {\n    Keytab %s\n    HostName %s\n%s}\n" % (realm["keytab"], HOST, extra)


@pytest.fixture(scope="module")
def server(samba_dc, realm, mail_tls):
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"], kerberos_block(realm),
                      logins="FailureDelay 0s\n    BlockPrivilegedAccounts yes", mail=True)
    s.start()
    yield s
    s.stop()


def client(realm, user, service="imap", authzid=b""):
    return sso.GssClient(realm["cc"][user], realm["krb5_conf"], service=service, host=HOST,
                         authzid=authzid)


def imap_gssapi(server, tls_ctx, realm, user, **kw):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    try:
        typ, data = m.authenticate("GSSAPI", client(realm, user, **kw))
        return True, data[0].decode()
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


def principal(user):
    return "%s@CORP.EXAMPLE.TEST" % user


# ---- the join ---------------------------------------------------------------------------------

def test_the_join_made_the_account_spns_and_a_private_keytab(samba_dc, realm):
    spns = {s.lower() for s in samba_dc.spns("POSTERN$")}
    assert {"imap/" + HOST, "pop/" + HOST} <= spns, spns
    assert os.stat(realm["keytab"]).st_mode & 0o777 == 0o600
    listing = subprocess.run(["klist", "-k", realm["keytab"]], capture_output=True, text=True,
                             check=True).stdout
    for p in ("imap/%s@CORP.EXAMPLE.TEST" % HOST, "pop/%s@CORP.EXAMPLE.TEST" % HOST,
              "POSTERN$@CORP.EXAMPLE.TEST"):
        assert p in listing, listing


def test_posternd_t_reads_the_keytab_and_refuses_a_missing_one(samba_dc, realm, mail_tls):
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"], kerberos_block(realm))
    code, out = postern.check_config(s.conf)
    assert code == 0, out
    s.write_config(s.render().replace(realm["keytab"], realm["keytab"] + ".missing"))
    code, out = postern.check_config(s.conf)
    assert code != 0 and "postern.keytab.missing" in out, out


# ---- logins -----------------------------------------------------------------------------------

def test_capabilities_offer_gssapi_only_after_tls_under_secure_login(server, tls_ctx):
    with Wire(server["imap"]) as w:
        w.line()
        caps = w.command("a", "CAPABILITY")[0]
        assert "AUTH=GSSAPI" not in caps and "LOGINDISABLED" in caps, caps
        w.command("b", "STARTTLS")
        w.starttls(tls_ctx)
        caps = w.command("c", "CAPABILITY")[0]
        assert "AUTH=GSSAPI" in caps and "AUTH=NTLM" not in caps, caps
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx)
    assert "GSSAPI" in p.capa()["SASL"]
    p.quit()


def test_imap_implicit_tls(server, tls_ctx, realm):
    ok, text = imap_gssapi(server, tls_ctx, realm, "jdoe")
    assert ok, text
    ev = last_auth(server, principal("jdoe"))
    assert ev["result"] == "allow" and ev["mechanism"] == "GSSAPI", ev
    assert ev["account"] == "jdoe" and ev["form"] == "kerberos-principal" and ev["tls"], ev
    assert ev["mailbox"] == "jdoe", ev


def gssapi_over_wire(w, tag, gss, initial=True):
    """AUTHENTICATE GSSAPI with SASL-IR (or without): the tagged reply line."""
    if initial:
        w.send("%s AUTHENTICATE GSSAPI %s\r\n" % (tag, base64.b64encode(gss.initial()).decode()))
    else:
        w.send("%s AUTHENTICATE GSSAPI\r\n" % tag)
    while True:
        line = w.line()
        if line.startswith(tag + " "):
            return line
        if line.startswith("* "):
            continue
        assert line.startswith("+"), line
        w.send(base64.b64encode(gss(base64.b64decode(line[2:]))).decode() + "\r\n")


def test_imap_starttls_with_sasl_ir(server, tls_ctx, realm):
    with Wire(server["imap"]) as w:
        w.line()
        w.command("a", "STARTTLS")
        w.starttls(tls_ctx)
        line = gssapi_over_wire(w, "b", client(realm, "asmith"))
        assert line.startswith("b OK"), line
    ev = last_auth(server, principal("asmith"))
    assert ev["result"] == "allow" and ev["mailbox"] == "anna", ev


def test_pop3_implicit_tls_and_stls(server, tls_ctx, realm):
    """No initial response: a Kerberos token is longer than a POP3 command line may be
    (RFC 5034 §4, RFC 2449's 255 octets), so clients send it after "+ "."""
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx)
    ok, line = sso.pop3_auth(p, "GSSAPI", client(realm, "jdoe", service="pop"))
    assert ok, line
    p.quit()
    ev = last_auth(server, principal("jdoe"))
    assert ev["result"] == "allow" and ev["protocol"] == "pop3", ev
    p = poplib.POP3("127.0.0.1", server["pop3"])
    p.stls(tls_ctx)
    ok, line = sso.pop3_auth(p, "GSSAPI", client(realm, "asmith", service="pop"))
    assert ok, line
    p.quit()
    assert last_auth(server, principal("asmith"))["result"] == "allow"


def test_curl_imap_and_pop3(server, realm, test_ca):
    env = dict(os.environ, KRB5_CONFIG=realm["krb5_conf"], KRB5CCNAME="FILE:" + realm["cc"]["jdoe"])
    for scheme, port in (("imaps", server["imaps"]), ("pop3s", server["pop3s"])):
        url = "%s://%s:%d/" % (scheme, HOST, port)
        done = subprocess.run(["curl", "-sS", "--max-time", "10", "--login-options", "AUTH=GSSAPI",
                               "-u", ":", "--cacert", test_ca["cert"], "--resolve",
                               "%s:%d:127.0.0.1" % (HOST, port), url],
                              capture_output=True, text=True, env=env, timeout=20)
        assert done.returncode == 0, (scheme, done.stderr)
        ev = last_auth(server, principal("jdoe"))
        assert ev["result"] == "allow" and ev["protocol"] == scheme[:4], ev


def test_gsasl_cli_imap(server, realm, test_ca):
    env = dict(os.environ, KRB5_CONFIG=realm["krb5_conf"], KRB5CCNAME="FILE:" + realm["cc"]["asmith"])
    done = subprocess.run(["gsasl", "--imap", "--mechanism=GSSAPI", "--service=imap",
                           "--hostname=" + HOST, "--x509-ca-file=" + test_ca["cert"],
                           "--verbose", "127.0.0.1", str(server["imap"])],
                          capture_output=True, text=True, env=env, timeout=20, input="")
    assert done.returncode == 0, done.stdout + done.stderr
    ev = last_auth(server, principal("asmith"))
    assert ev["result"] == "allow" and ev["tls"], ev


# ---- the same policy as password logins --------------------------------------------------------

@pytest.mark.parametrize("user,reason", [("dadmin", "privileged_account"),
                                         ("noimap1", "protocol_disabled"),
                                         ("ssodis1", "account_disabled"),
                                         ("ssoexp1", "account_expired"),
                                         ("ssolock1", "account_locked")])
def test_tickets_of_blocked_accounts_are_refused(server, tls_ctx, realm, user, reason):
    ok, text = imap_gssapi(server, tls_ctx, realm, user)
    assert not ok and "[AUTHENTICATIONFAILED]" in text, text
    ev = last_auth(server, principal(user))
    assert ev["result"] == "deny" and ev["reason"] == reason, ev


def test_protocol_enablement_is_per_protocol(server, tls_ctx, realm):
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx)
    ok, line = sso.pop3_auth(p, "GSSAPI", client(realm, "noimap1", service="pop"))
    p.quit()
    assert ok, line
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=tls_ctx)
    ok, line = sso.pop3_auth(p, "GSSAPI", client(realm, "nopop1", service="pop"))
    p.quit()
    assert not ok and line.startswith("-ERR [AUTH]"), line
    assert last_auth(server, principal("nopop1"))["reason"] == "protocol_disabled"


def test_a_disabled_account_gets_no_ticket(samba_dc, realm, tmp_path):
    done = samba_dc.kinit("disabled1", PW, tmp_path / "cc", realm["krb5_conf"])
    assert done.returncode != 0 and b"revoked" in done.stderr, done.stderr


def test_authorization_identity(server, tls_ctx, realm):
    for authzid in (b"jdoe", b"jdoe@corp.example.test", b"CORP\\jdoe", b"jdoe@CORP.EXAMPLE.TEST"):
        ok, text = imap_gssapi(server, tls_ctx, realm, "jdoe", authzid=authzid)
        assert ok, (authzid, text)
    ok, text = imap_gssapi(server, tls_ctx, realm, "jdoe", authzid=b"anna")
    assert not ok, text
    ev = last_auth(server, principal("jdoe"))
    assert ev["reason"] == "authorization_identity_refused", ev


# ---- broken and misdirected tokens ------------------------------------------------------------

def refused_token(server, tls_ctx, token_b64):
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        return w.command("a", "AUTHENTICATE GSSAPI " + token_b64)[-1]


def test_a_ticket_for_another_service_is_refused(server, tls_ctx, realm):
    for service in ("pop", "host"):
        token = client(realm, "jdoe", service=service).initial()
        line = refused_token(server, tls_ctx, base64.b64encode(token).decode())
        assert line.startswith("a NO [AUTHENTICATIONFAILED]"), line
        ev = last_auth(server)
        assert ev["reason"] == "kerberos_wrong_service", ev
    assert "ticket for pop/%s@CORP.EXAMPLE.TEST" % HOST in server.log_text()


def test_garbage_truncated_and_replayed_tokens(server, tls_ctx, realm):
    line = refused_token(server, tls_ctx, base64.b64encode(b"\x60\x03\x06\x01\x00").decode())
    assert line.startswith("a NO"), line
    assert last_auth(server)["reason"] == "kerberos_invalid_token"
    token = client(realm, "jdoe").initial()
    line = refused_token(server, tls_ctx, base64.b64encode(token[:len(token) // 2]).decode())
    assert line.startswith("a NO"), line
    assert last_auth(server)["reason"] == "kerberos_invalid_token"
    line = refused_token(server, tls_ctx, "not*base64")
    assert line.startswith("a BAD"), line
    assert last_auth(server)["reason"] == "invalid_input"
    # the same authenticator twice: the second is a replay
    token = base64.b64encode(client(realm, "jdoe").initial()).decode()
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        w.send("a AUTHENTICATE GSSAPI %s\r\n" % token)
        assert w.line().startswith("+ ")
    line = refused_token(server, tls_ctx, token)
    assert line.startswith("a NO"), line
    ev = last_auth(server)
    assert ev["reason"] == "kerberos_replay", ev


def test_after_a_refusal_the_next_login_on_the_connection_works(server, tls_ctx, realm):
    with Wire(server["imaps"], tls_context=tls_ctx) as w:
        w.line()
        assert w.command("a", "AUTHENTICATE GSSAPI AAAA")[-1].startswith("a NO")
        assert gssapi_over_wire(w, "b", client(realm, "jdoe"), initial=False).startswith("b OK")


# ---- LoginType --------------------------------------------------------------------------------

def test_gssapi_without_tls_only_under_plaintext_authentication(samba_dc, realm, mail_tls, server):
    with Wire(server["imap"]) as w:   # secure-login: no credentials of any kind in clear text
        w.line()
        line = gssapi_over_wire(w, "a", client(realm, "jdoe"))
        assert line.startswith("a NO [PRIVACYREQUIRED]"), line
    assert last_auth(server)["reason"] == "plaintext_requires_tls"
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"], kerberos_block(realm),
                      imap_extra="LoginType plaintext-authentication")
    s.start()
    try:
        with Wire(s["imap"]) as w:
            w.line()
            caps = w.command("a", "CAPABILITY")[0]
            assert "AUTH=GSSAPI" in caps and "AUTH=PLAIN" not in caps, caps
            gss = client(realm, "jdoe")
            w.send("b AUTHENTICATE GSSAPI %s\r\n" % base64.b64encode(gss.initial()).decode())
            lines = []
            while True:
                line = w.line()
                lines.append(line)
                if line.startswith("b "):
                    break
                if line.startswith("+"):
                    w.send(base64.b64encode(gss(base64.b64decode(line[2:]))).decode() + "\r\n")
            assert lines[-1].startswith("b OK"), lines
            assert any("[ALERT]" in l for l in lines), lines   # POLICY.md §2
        ev = last_auth(s, principal("jdoe"))
        assert ev["result"] == "allow" and not ev["tls"], ev
    finally:
        s.stop()


# ---- realms -----------------------------------------------------------------------------------

def test_a_principal_of_another_realm_is_refused(samba_dc, realm, mail_tls, tls_ctx, kdc):
    """A second realm (the lab's MIT KDC, EXAMPLE.TEST) issues a ticket for the same SPN and
    postern has its key, as with a trusted realm: the ticket is good, the realm names no
    account here."""
    d = realm["dir"]
    other = kdc.add_keys(["imap/" + HOST], os.path.join(d, "other-realm.keytab"))
    merged = os.path.join(d, "merged.keytab")
    if os.path.exists(merged):
        os.unlink(merged)
    daemon.run(["ktutil"], input=("rkt %s\nrkt %s\nwkt %s\n" % (realm["keytab"], other, merged))
               .encode(), what="ktutil")
    conf = os.path.join(d, "krb5-other.conf")
    with open(kdc.krb5_conf) as f:
        text = f.read()
    with open(conf, "w") as f:   # the client's view: mail.corp.example.test is in EXAMPLE.TEST
        f.write(text.replace("[domain_realm]", "[domain_realm]\n\t%s = EXAMPLE.TEST" % HOST))
    cc = os.path.join(d, "cc.other")
    done = daemon.run(["kinit", "jdoe@EXAMPLE.TEST"], env=dict(os.environ, KRB5_CONFIG=conf,
                      KRB5CCNAME="FILE:" + cc), input=b"Demo-Pass-1\n", check=False)
    assert done.returncode == 0, done.stderr
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"],
                      "kerberos {\n    Keytab %s\n    HostName %s\n}\n" % (merged, HOST))
    s.start()
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        with pytest.raises(imaplib.IMAP4.error):
            m.authenticate("GSSAPI", sso.GssClient(cc, conf, host=HOST))
        m.logout()
        ev = last_auth(s, "jdoe@EXAMPLE.TEST")
        assert ev["reason"] == "unknown_realm", ev
        # and CORP's own users still log in with the merged keytab
        ok, text = imap_gssapi(s, tls_ctx, realm, "jdoe")
        assert ok, text
    finally:
        s.stop()


# ---- the machine account as the directory's service account ------------------------------------

def test_directory_binds_as_the_machine_account(samba_dc, realm, mail_tls, tls_ctx):
    """No LDAP password in a file: the joined keytab's POSTERN$ key binds by SASL GSSAPI."""
    d = realm["dir"]
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n%s dc1.%s\n" % (samba_dc.host, samba_dc.domain))
    os.chmod(hosts, 0o644)
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"], kerberos_block(realm), hosts=hosts)
    block = s.global_extra
    start = block.index("directory {")
    end = block.index("}", start)
    directory = ("directory {\n    URI ldap://dc1.%s\n    BaseDN %s\n    BindKeytab %s\n"
                 "    BindPrincipal POSTERN$@CORP.EXAMPLE.TEST\n    TLS starttls\n"
                 "    CAFile %s\n    NetworkTimeout 2s\n    OperationTimeout 3s\n"
                 % (samba_dc.domain, postern.quote(samba_dc.base_dn), realm["keytab"],
                    os.path.join(d, "ca.pem")))
    shutil.copy(samba_dc.ca_cert, os.path.join(d, "ca.pem"))
    os.chmod(os.path.join(d, "ca.pem"), 0o644)
    s.global_extra = block[:start] + directory + block[end:]
    s.write_config()
    assert "BindPasswordFile" not in open(s.conf).read()
    s.start()
    try:
        ok, text = imap_gssapi(s, tls_ctx, realm, "jdoe")
        assert ok, text + s.log_text()[-2000:]
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        m.login("jdoe", PW)   # a password login: lookups as POSTERN$, the bind as jdoe
        m.logout()
        assert last_auth(s, "jdoe")["result"] == "allow"
    finally:
        s.stop()
    assert "service binds by SASL GSSAPI as POSTERN$@CORP.EXAMPLE.TEST" in s.log_text()


# ---- channel binding (ExtendedProtection) -----------------------------------------------------

def imap_bound(server, tls_ctx, realm, binding):
    """GSSAPI over implicit TLS with channel bindings: None, the session's, or `binding`."""
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    data = sso.tls_end_point(m.sock) if binding == "session" else binding
    try:
        m.authenticate("GSSAPI", sso.GssClient(realm["cc"]["jdoe"], realm["krb5_conf"], host=HOST,
                                               channel_binding=data))
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        m.logout()


def test_channel_binding_is_checked_when_the_client_sends_it(server, tls_ctx, realm):
    """ExtendedProtection allow (the default): bound to this TLS session or not bound."""
    assert imap_bound(server, tls_ctx, realm, "session")
    assert imap_bound(server, tls_ctx, realm, None)
    assert not imap_bound(server, tls_ctx, realm, b"tls-server-end-point:" + b"\0" * 32)
    assert last_auth(server)["reason"] == "channel_binding_mismatch"


def test_extended_protection_require(samba_dc, realm, mail_tls, tls_ctx):
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"],
                      kerberos_block(realm, "    ExtendedProtection require\n"))
    s.start()
    try:
        assert not imap_bound(s, tls_ctx, realm, None)
        ev = last_auth(s)
        assert ev["reason"] == "channel_binding_required", ev
        assert ev["login"] == principal("jdoe"), ev
        assert imap_bound(s, tls_ctx, realm, "session")
        assert last_auth(s)["result"] == "allow"
    finally:
        s.stop()


# ---- reload and the offline tools --------------------------------------------------------------

def test_reload_rereads_a_changed_keytab_as_user(samba_dc, realm, mail_tls, tls_ctx):
    """A keytab readable by root only is read at start; when it changes, a reload (as User)
    cannot read it and keeps the running keys. Owned by User, it is read again."""
    import pwd
    keytab = os.path.join(realm["dir"], "reload.keytab")
    shutil.copy(realm["keytab"], keytab)
    os.chmod(keytab, 0o600)
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"],
                      "kerberos {\n    Keytab %s\n    HostName %s\n}\n" % (keytab, HOST))
    # the service password too must be readable by User for a reload to build a new context
    os.chown(os.path.join(s.dir, "ldap.secret"), pwd.getpwnam("nobody").pw_uid, -1)
    s.start()
    try:
        os.utime(keytab)
        s.reload()
        assert "keytab changed but cannot be read again" in s.log_text()
        assert "reload.keytab: Permission denied" in s.log_text()
        ok, text = imap_gssapi(s, tls_ctx, realm, "jdoe")
        assert ok, text
        os.chown(keytab, pwd.getpwnam("nobody").pw_uid, -1)
        os.utime(keytab, (time.time() + 5, time.time() + 5))
        s.reload()
        assert s.log_text().count("kerberos: GSSAPI with") == 2, s.log_text()[-2000:]
        ok, text = imap_gssapi(s, tls_ctx, realm, "asmith")
        assert ok, text
    finally:
        s.stop()


def test_posternctl_explain_a_principal(server, realm):
    """The pipeline's resolution and policy for a principal, offline (no ticket needed)."""
    exe = os.environ.get("POSTERNCTL") or os.path.join(postern.ROOT, "build", "posternctl")
    env = dict(os.environ, KRB5_CONFIG=realm["krb5_conf"])
    for who, verdict in (("jdoe@CORP.EXAMPLE.TEST", "ok"),
                         ("dadmin@CORP.EXAMPLE.TEST", "privileged_account"),
                         ("jdoe@OTHER.REALM", "unknown_realm")):
        done = subprocess.run([exe, "-c", server.conf, "explain", "--mech", "GSSAPI",
                               "--format", "json", who], capture_output=True, text=True,
                              env=env, timeout=30)
        assert verdict in done.stdout, (who, done.stdout, done.stderr)


def test_posternctl_join(samba_dc, realm, mail_tls, tls_ctx):
    """posternctl join runs adcli for the names of the kerberos block: one computer account,
    imap/ and pop/ SPNs for each name, a keytab owned by User with mode 0600 that posternd
    then accepts tickets for every name with."""
    import pwd
    exe = os.environ.get("POSTERNCTL") or os.path.join(postern.ROOT, "build", "posternctl")
    names = ("mail2.corp.example.test", "mail3.corp.example.test")
    keytab = os.path.join(realm["dir"], "joined2.keytab")
    s = sso.SsoServer(samba_dc, mail_tls, realm["krb5_conf"],
                      "kerberos {\n    Keytab %s\n    HostName %s\n}\n" % (keytab, " ".join(names)))
    done = subprocess.run([exe, "-c", s.conf, "join", "--domain", samba_dc.domain, "--realm",
                           samba_dc.realm, "--dc", samba_dc.host, "--computer-name", "POSTERN2"],
                          input=samba_dc.admin_pw + "\n", capture_output=True, text=True,
                          env=dict(os.environ, KRB5_CONFIG=realm["krb5_conf"]), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kerberos {" in done.stdout and "HostName %s" % " ".join(names) in done.stdout
    st = os.stat(keytab)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == pwd.getpwnam("nobody").pw_uid
    spns = {x.lower() for x in samba_dc.spns("POSTERN2$")}
    assert {"%s/%s" % (svc, n) for svc in ("imap", "pop") for n in names} <= spns, spns
    s.start()
    try:
        for name in names:
            m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
            m.authenticate("GSSAPI", sso.GssClient(realm["cc"]["jdoe"], realm["krb5_conf"],
                                                   host=name))
            m.logout()
        assert last_auth(s, principal("jdoe"))["result"] == "allow"
    finally:
        s.stop()


def test_a_client_whose_clock_is_off(server, tls_ctx, realm):
    """An authenticator stamped an hour ahead (the client's clock, via faketime): refused as
    kerberos_clock_skew, with the ticket itself still valid."""
    if not shutil.which("faketime"):
        pytest.skip("needs faketime (make deps)")
    script = ("import base64, sys; sys.path.insert(0, %r); from tests.lab import sso; "
              "print(base64.b64encode(sso.GssClient(%r, %r, host=%r).initial()).decode())"
              % (postern.ROOT, realm["cc"]["jdoe"], realm["krb5_conf"], HOST))
    # the service ticket first, with the right time (the KDC would refuse the skewed client)
    daemon.run(["kvno", "imap/" + HOST], env=dict(os.environ, KRB5_CONFIG=realm["krb5_conf"],
               KRB5CCNAME="FILE:" + realm["cc"]["jdoe"]), what="kvno")
    done = subprocess.run(["faketime", "-f", "+1h", "/usr/bin/python3", "-c", script],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    line = refused_token(server, tls_ctx, done.stdout.strip())
    assert line.startswith("a NO [AUTHENTICATIONFAILED]"), line
    assert last_auth(server)["reason"] == "kerberos_clock_skew"
