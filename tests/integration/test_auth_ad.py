# Logins against a real Samba AD DC: POLICY.md's login forms, blocked accounts, AD bind sub-codes.
"""The DC (tests/lab/samba.py, session fixture samba_dc in conftest.py) has realm
CORP.EXAMPLE.TEST, NetBIOS name CORP, Exchange's mailNickname in its schema and the
accounts jdoe, asmith (alias anna), noupn (no userPrincipalName), disabled1, locked1,
expired1, mustchange1, pwexpired1, hours1 (no logon hours), ws1 (userWorkstations OTHERPC),
noimap1/nopop1 (Exchange protocolSettings), dup1/dup2 (one mail address), dadmin (Domain
Admins), nested1 (in a group nested in Domain Admins), primary1 (primary group Domain
Admins), mustchange2 (pwdLastSet 0 + DONT_EXPIRE_PASSWD), unlocked1 (lockout expired),
upnother (UPN other.name@...), formeradmin1 (adminCount 1), jürgen (non-ASCII name and
password) and the computer WS01$.
posternd talks to it over StartTLS with the DC's CA, as the service account svc-postern.
"""
import imaplib
import os
import poplib
import subprocess
import time

import pytest

from tests.lab import postern
from tests.lab.wire import Wire

REFUSED_IMAP = "b'[AUTHENTICATIONFAILED] Authentication failed'"
REFUSED_POP3 = "b'-ERR [AUTH] Authentication failed'"


def new_dir():
    return postern.public_dir("posternd-ad-")


@pytest.fixture(scope="module")
def ad_server(samba_dc, server_tls):
    d = new_dir()
    s = postern.Posternd(server_tls, directory=d,
                         global_extra=postern.directory_block(samba_dc, d))
    s.write_config()
    s.start()
    yield s
    s.stop()


def imap_login(server, ctx, login, password):
    """(ok, text) of an IMAP LOGIN over implicit TLS; the name is sent as a quoted string."""
    quoted = '"%s"' % login.replace("\\", "\\\\").replace('"', '\\"')
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx)
    try:
        typ, data = m.login(quoted, password)
        m.logout()
        return True, data[0].decode()
    except imaplib.IMAP4.error as e:
        m.logout()
        return False, str(e)


def pop3_login(server, ctx, login, password):
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=ctx)
    try:
        p.user(login)
        return True, p.pass_(password).decode()
    except poplib.error_proto as e:
        return False, str(e)
    finally:
        p.quit()


def last_auth(server, login):
    events = [e for e in server.audit_events() if e["event"] == "auth" and e["login"] == login]
    assert events, "no audit event for %r" % login
    return events[-1]


def dc_state(dc, sam, attrs=("badPwdCount", "lockoutTime", "logonCount")):
    """Account state read as the service account (a successful Administrator bind would
    reset Administrator's badPwdCount and so hide what we look for)."""
    hits = dc.search("(sAMAccountName=%s)" % sam, list(attrs), bind_dn=dc.service_dn,
                     password=dc.service_pw)
    assert len(hits) == 1, sam
    return {a: hits[0].first(a) for a in attrs}


def binds_for(log_lines, *names):
    """samba's 'Auth:' records that name one of `names` (bind name or account), any result."""
    needles = ["]\\[%s]" % n.lower() for n in names]
    return [l for l in log_lines if any(n in l.lower() for n in needles)]


# ---- the DC itself: what the tests below rely on ---------------------------------------------

def test_the_dc_is_what_the_tests_expect(samba_dc):
    """Facts about Samba that decide which of postern's paths the tests exercise."""
    jdoe = samba_dc.account("jdoe", ["mailNickname", "userPrincipalName", "proxyAddresses"])
    assert jdoe.first("mailNickname") == "jdoe"              # the Exchange schema extension
    assert sorted(jdoe.text("proxyAddresses")) == ["SMTP:john.doe@corp.example.test",
                                                   "smtp:jd@corp.example.de"]
    assert "userPrincipalName" not in samba_dc.account("noupn", ["userPrincipalName"])
    # the constructed attribute comes back in a subtree search, to the service account too
    locked = samba_dc.search("(sAMAccountName=locked1)", ["msDS-User-Account-Control-Computed"],
                             bind_dn=samba_dc.service_dn, password=samba_dc.service_pw)
    assert int(locked[0].first("msDS-User-Account-Control-Computed")) & 0x10
    expired = samba_dc.account("pwexpired1", ["msDS-User-Account-Control-Computed", "pwdLastSet"])
    assert int(expired.first("msDS-User-Account-Control-Computed")) & 0x800000
    assert expired.first("pwdLastSet") != "0"
    # Samba sets no adminCount on new Domain Admins members (no SDProp/AdminSDHolder run):
    # BlockPrivilegedAccounts can only catch dadmin by its memberOf.
    dadmin = samba_dc.account("dadmin", ["adminCount", "memberOf"])
    assert dadmin.first("adminCount") is None
    assert dadmin.text("memberOf") == ["CN=Domain Admins,CN=Users," + samba_dc.base_dn]
    assert samba_dc.account("nested1", ["memberOf"]).text("memberOf") == [
        "CN=Nested Admins,CN=Users," + samba_dc.base_dn]
    primary1 = samba_dc.account("primary1", ["memberOf", "primaryGroupID", "adminCount"])
    assert primary1.first("primaryGroupID") == "512" and primary1.first("adminCount") is None
    assert not any(g.startswith("CN=Domain Admins,") for g in primary1.text("memberOf"))
    # unlocked1: locked once, lockout over; lockoutTime stays until its next good bind
    unlocked = samba_dc.account("unlocked1", ["lockoutTime", "msDS-User-Account-Control-Computed"])
    assert unlocked.first("lockoutTime") != "0"
    assert not int(unlocked.first("msDS-User-Account-Control-Computed")) & 0x10
    # AD's bind sub-codes, straight from the DC
    for who, code in (("hours1", "530"), ("ws1", "531"), ("pwexpired1", "532"),
                      ("disabled1", "533"), ("expired1", "701"), ("mustchange1", "773"),
                      ("locked1", "775")):
        rc, diag = samba_dc.bind("%s@%s" % (who, samba_dc.domain), samba_dc.password)
        assert rc == 49 and "data %s," % code in diag, (who, diag)
    assert samba_dc.bind("noupn@" + samba_dc.domain, samba_dc.password)[0] == 0  # implicit UPN
    # AD takes the implicit UPN even when the account has another UPN (postern does not)
    assert samba_dc.bind("upnother@" + samba_dc.domain, samba_dc.password)[0] == 0
    assert samba_dc.bind("mustchange2@" + samba_dc.domain, samba_dc.password)[0] == 0
    # the DC would let the blocked accounts in: refusing them is postern's doing
    assert samba_dc.bind(samba_dc.admin_dn, samba_dc.admin_pw)[0] == 0
    assert samba_dc.bind(samba_dc.dn_of(samba_dc.computer), samba_dc.computer_pw)[0] == 0


# ---- logins that succeed ---------------------------------------------------------------------

@pytest.mark.parametrize("login,form", [
    ("jdoe", "name"),
    ("JDoe", "name"),
    ("CORP\\jdoe", "domain-name"),
    ("corp\\JDOE", "domain-name"),
    ("corp.example.test\\jdoe", "domain-name"),
    ("CORP.EXAMPLE.TEST\\jdoe", "domain-name"),
    ("jdoe@corp.example.test", "upn"),
    ("JDOE@CORP.EXAMPLE.TEST", "upn"),
    ("asmith@corp.example.test", "upn"),
    ("noupn@corp.example.test", "upn"),      # the implicit UPN: Samba has no UPN stored
    ("NoUPN@CORP.Example.Test", "upn"),
    ("nopop1", "name"),                      # POP3 is off for it, IMAP is not
    ("mustchange2", "name"),                 # pwdLastSet 0, but DONT_EXPIRE_PASSWD
    ("unlocked1", "name"),                   # lockoutTime set, lockout over (computed: 0)
    ("other.name@corp.example.test", "upn"),  # an explicit UPN unlike sam@domain
    ("primary1", "name"),
    ("dadmin", "name"),                      # privileged, but BlockPrivilegedAccounts is off
    ("nested1", "name"),
])
def test_allowed_forms(ad_server, samba_dc, tls_ctx, login, form):
    ok, text = imap_login(ad_server, tls_ctx, login, samba_dc.password)
    assert ok, text
    assert "Logged in" in text
    ev = last_auth(ad_server, login)
    assert (ev["result"], ev["reason"], ev["form"]) == ("allow", "ok", form), ev
    assert ev["account_dn"].startswith("CN=") and ev["account_dn"].endswith(samba_dc.base_dn)
    assert ev["directory_server"] == samba_dc.uri
    assert "ad_subcode" not in ev


# ---- refusals: one answer for the client, the reason in the audit ----------------------------

# login, password, reason, AD sub-code in the audit (None: refused before any bind)
REFUSALS = [
    ("asmith", "user", "alias_not_account_name", None),    # alias anna != sAMAccountName
    ("CORP\\asmith", "user", "alias_not_account_name", None),
    ("anna", "user", "unknown_account", None),             # an alias is not an account name
    ("OTHER\\jdoe", "user", "unknown_domain", None),
    ("john.doe@corp.example.test", "user", "login_form_refused", None),  # primary SMTP
    ("jd@corp.example.de", "user", "login_form_refused", None),          # secondary address
    ("nobody@corp.example.test", "user", "unknown_account", None),
    ("*", "user", "unknown_account", None),
    ("Administrator", "admin", "builtin_administrator", None),
    ("CORP\\Administrator", "admin", "builtin_administrator", None),
    ("Administrator@corp.example.test", "admin", "builtin_administrator", None),
    ("Guest", "user", "guest_account", None),
    ("krbtgt", "user", "krbtgt_account", None),
    ("WS01$", "computer", "computer_account", None),
    ("disabled1", "user", "account_disabled", None),
    ("locked1", "user", "account_locked", None),           # msDS-User-Account-Control-Computed
    ("expired1", "user", "account_expired", None),
    ("mustchange1", "user", "password_must_change", None),
    ("pwexpired1", "user", "password_expired", None),      # 0x800000 in the computed flags
    ("noimap1", "user", "protocol_disabled", None),        # protocolSettings IMAP4§0…
    # dup1's and dup2's address: the third search finds two accounts, which decides first
    ("shared@corp.example.test", "user", "ambiguous_login", None),
    ("hours1", "user", "logon_hours", "530"),              # only the DC knows: bind sub-code
    ("ws1", "user", "workstation_restriction", "531"),
    ("jdoe", "wrong", "invalid_credentials", "52e"),
    ("CORP\\jdoe", "wrong", "invalid_credentials", "52e"),
    ("noupn@corp.example.test", "wrong", "invalid_credentials", "52e"),
]


def _password(dc, kind):
    return {"user": dc.password, "admin": dc.admin_pw, "computer": dc.computer_pw,
            "wrong": "Wrong-Pass-9"}[kind]


@pytest.mark.parametrize("login,kind,reason,subcode", REFUSALS)
def test_refused_logins_look_alike(ad_server, samba_dc, tls_ctx, login, kind, reason, subcode):
    ok, text = imap_login(ad_server, tls_ctx, login, _password(samba_dc, kind))
    assert not ok
    assert text == REFUSED_IMAP, text
    ev = last_auth(ad_server, login)
    assert (ev["result"], ev["reason"]) == ("deny", reason), ev
    assert ev.get("ad_subcode") == subcode, ev
    if reason not in ("unknown_domain",):   # every other refusal needed the directory
        assert ev["directory_server"] == samba_dc.uri, ev


def test_implicit_upn_of_an_account_with_another_upn(ad_server, samba_dc, tls_ctx):
    """postern.conf(5), LOGIN NAMES: the implicit UPN counts only for an account without a
    userPrincipalName; else step 3 (mail, proxyAddresses) follows, which finds nothing here:
    unknown_account, answered like any refusal. (AD itself accepts the bind with this name:
    see test_the_dc_is_what_the_tests_expect.)"""
    ok, text = imap_login(ad_server, tls_ctx, "upnother@corp.example.test", samba_dc.password)
    ev = last_auth(ad_server, "upnother@corp.example.test")
    assert not ok and text == REFUSED_IMAP, (text, ev)
    assert (ev["reason"], ev["form"]) == ("unknown_account", "upn"), ev


@pytest.mark.parametrize("login,kind,reason", [
    ("CORP\\jdoe", "wrong", "invalid_credentials"),
    ("nopop1", "user", "protocol_disabled"),
    ("Administrator", "admin", "builtin_administrator"),
    ("locked1", "user", "account_locked"),
    ("hours1", "user", "logon_hours"),
    ("ws1", "user", "workstation_restriction"),
])
def test_pop3_refusals_look_alike(ad_server, samba_dc, tls_ctx, login, kind, reason):
    ok, text = pop3_login(ad_server, tls_ctx, login, _password(samba_dc, kind))
    assert not ok and text == REFUSED_POP3, text
    ev = last_auth(ad_server, login)
    assert (ev["protocol"], ev["result"], ev["reason"]) == ("pop3", "deny", reason), ev


def test_empty_password_never_binds(ad_server, samba_dc, tls_ctx):
    before = len(samba_dc.auth_log())
    ok, text = imap_login(ad_server, tls_ctx, "jdoe", "")
    assert not ok and text == REFUSED_IMAP
    assert last_auth(ad_server, "jdoe")["reason"] == "empty_password"
    time.sleep(0.3)
    assert not binds_for(samba_dc.auth_log()[before:], "jdoe", samba_dc.dn_of("jdoe"))


def test_blocked_accounts_never_reach_the_dc(ad_server, samba_dc, tls_ctx):
    """POLICY.md §3: refused before their password is sent (no oracle, no lockout through
    us) — proved with samba's own authentication log and the accounts' counters, while each
    is sent the password the DC would accept (or, for locked1, a wrong one)."""
    blocked = [("Administrator", samba_dc.admin_pw), ("Administrator", "Wrong-Pass-9"),
               ("Guest", samba_dc.password), ("krbtgt", samba_dc.password),
               (samba_dc.computer, samba_dc.computer_pw), ("disabled1", samba_dc.password),
               ("locked1", samba_dc.password), ("locked1", "Wrong-Pass-9"),
               ("expired1", samba_dc.password), ("mustchange1", samba_dc.password),
               ("pwexpired1", samba_dc.password), ("noimap1", samba_dc.password)]
    names = sorted({sam for sam, _ in blocked})
    state = {sam: dc_state(samba_dc, sam) for sam in names}
    before = len(samba_dc.auth_log())
    for sam, password in blocked:
        assert not imap_login(ad_server, tls_ctx, sam, password)[0]
        assert "ad_subcode" not in last_auth(ad_server, sam)
    # control: an allowed login in the same window shows up in samba's log
    assert imap_login(ad_server, tls_ctx, "jdoe", samba_dc.password)[0]
    time.sleep(0.5)    # samba writes its records after answering
    log = samba_dc.auth_log()[before:]
    jdoe_binds = binds_for(log, samba_dc.dn_of("jdoe"))
    assert len(jdoe_binds) == 1, log
    assert "[LDAP,simple bind/TLS]" in jdoe_binds[0] and "NT_STATUS_OK" in jdoe_binds[0]
    for sam in names:
        dn = samba_dc.dn_of(sam)
        assert not binds_for(log, sam, dn, "%s@%s" % (sam, samba_dc.domain)), (sam, log)
        assert dc_state(samba_dc, sam) == state[sam], sam    # no bad password counted


def test_locked_account_path(ad_server, samba_dc, tls_ctx):
    """locked1 is refused by postern's own check of msDS-User-Account-Control-Computed
    (which Samba returns when asked by name), not by the DC's 775 after a bind."""
    assert not imap_login(ad_server, tls_ctx, "locked1", samba_dc.password)[0]
    ev = last_auth(ad_server, "locked1")
    assert ev["reason"] == "account_locked" and "ad_subcode" not in ev, ev


# ---- the other mechanisms and clients ---------------------------------------------------------

def test_pop3_user_pass(ad_server, samba_dc, tls_ctx):
    for login, form in (("CORP\\jdoe", "domain-name"), ("noimap1", "name")):
        ok, text = pop3_login(ad_server, tls_ctx, login, samba_dc.password)
        assert ok and text.startswith("+OK Logged in"), text
        ev = last_auth(ad_server, login)
        assert (ev["protocol"], ev["result"], ev["form"]) == ("pop3", "allow", form)
        assert ev["directory_server"] == samba_dc.uri


def test_imap_authenticate_plain_and_login(ad_server, samba_dc, tls_ctx):
    pw = samba_dc.password
    m = imaplib.IMAP4_SSL("127.0.0.1", ad_server["imaps"], ssl_context=tls_ctx)
    typ, _ = m.authenticate("PLAIN", lambda _: ("\0noupn@corp.example.test\0" + pw).encode())
    assert typ == "OK"
    m.logout()
    ev = last_auth(ad_server, "noupn@corp.example.test")
    assert (ev["mechanism"], ev["result"], ev["form"]) == ("PLAIN", "allow", "upn")
    m = imaplib.IMAP4_SSL("127.0.0.1", ad_server["imaps"], ssl_context=tls_ctx)
    answers = iter([b"corp.example.test\\jdoe", pw.encode()])
    assert m.authenticate("LOGIN", lambda _: next(answers))[0] == "OK"
    m.logout()
    ev = last_auth(ad_server, "corp.example.test\\jdoe")
    assert (ev["mechanism"], ev["result"], ev["form"]) == ("LOGIN", "allow", "domain-name")
    # a refusal through SASL looks like one through LOGIN
    m = imaplib.IMAP4_SSL("127.0.0.1", ad_server["imaps"], ssl_context=tls_ctx)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.authenticate("PLAIN", lambda _: ("\0hours1\0" + pw).encode())
    m.logout()
    assert str(e.value) == "[AUTHENTICATIONFAILED] Authentication failed"  # imaplib decodes here
    ev = last_auth(ad_server, "hours1")
    assert (ev["mechanism"], ev["reason"], ev.get("ad_subcode")) == ("PLAIN", "logon_hours", "530")


def test_non_ascii_name_and_password(ad_server, samba_dc, tls_ctx):
    """AD keeps names and passwords in UTF-16; postern sends UTF-8 (LDAP), which the DC
    converts: a non-ASCII name is found case-insensitively and its password verifies."""
    pw = "Gr\u00fc\u00dfe-Pass-1"
    for login in ("j\u00fcrgen", "J\u00dcRGEN", "CORP\\j\u00fcrgen",
                  "j\u00fcrgen@corp.example.test"):
        ok, text = pop3_login(ad_server, tls_ctx, login, pw)    # poplib speaks UTF-8
        ev = last_auth(ad_server, login)
        assert ok and ev["result"] == "allow", (login, text, ev)
        assert ev["account"] == "j\u00fcrgen", ev
    m = imaplib.IMAP4_SSL("127.0.0.1", ad_server["imaps"], ssl_context=tls_ctx)
    assert m.authenticate("PLAIN", lambda _: ("\0j\u00fcrgen\0" + pw).encode())[0] == "OK"
    m.logout()
    ok, _ = pop3_login(ad_server, tls_ctx, "j\u00fcrgen", "Grusse-Pass-1")
    assert not ok and last_auth(ad_server, "j\u00fcrgen")["ad_subcode"] == "52e"


def test_pop3_auth_plain(ad_server, samba_dc, tls_ctx):
    import base64
    with Wire(ad_server["pop3s"], tls_context=tls_ctx) as w:
        w.line()
        w.send("AUTH PLAIN " + base64.b64encode(
            ("\0jdoe@corp.example.test\0" + samba_dc.password).encode()).decode() + "\r\n")
        assert w.line(timeout=10).startswith("+OK Logged in")
    ev = last_auth(ad_server, "jdoe@corp.example.test")
    assert (ev["protocol"], ev["mechanism"], ev["result"]) == ("pop3", "PLAIN", "allow")


@pytest.mark.parametrize("scheme,mech,extra", [("imaps", "PLAIN", []), ("imaps", "LOGIN", []),
                                               ("pop3s", "PLAIN", ["--sasl-ir"]),
                                               ("pop3s", "+LOGIN", [])])
def test_curl(ad_server, samba_dc, test_ca, scheme, mech, extra):
    port = ad_server[scheme]
    login = "jdoe@corp.example.test"
    r = subprocess.run(["curl", "-sS", "--cacert", test_ca["cert"], "--connect-to",
                        "localhost:%d:127.0.0.1:%d" % (port, port),
                        "-u", "%s:%s" % (login, samba_dc.password),
                        "--login-options", "AUTH=" + mech] + extra +
                       ["%s://localhost:%d/" % (scheme, port)],
                       capture_output=True, text=True, timeout=20)
    ev = last_auth(ad_server, login)
    expected = "LOGIN" if mech == "+LOGIN" and scheme == "pop3s" else mech
    assert (ev["result"], ev["form"]) == ("allow", "upn"), (r.stderr, ev)
    if expected != "LOGIN":
        assert ev["mechanism"] == expected, ev
    # curl reaches the mailbox commands, which are not there yet: not a login failure
    assert "Login denied" not in r.stderr and "Authentication failed" not in r.stderr, r.stderr


def test_ldaps_uri(samba_dc, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        samba_dc, d, uris=[samba_dc.ldaps_uri]))
    assert imap_login(s, tls_ctx, "CORP\\jdoe", samba_dc.password)[0]
    assert last_auth(s, "CORP\\jdoe")["directory_server"] == samba_dc.ldaps_uri


def test_failover_to_the_dc(samba_dc, server_tls, tls_ctx, make_server):
    from tests.lab import ports
    dead = "ldap://127.0.0.1:%d" % ports.free_port()
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        samba_dc, d, uris=[dead, samba_dc.uri]))
    assert imap_login(s, tls_ctx, "jdoe", samba_dc.password)[0]
    assert last_auth(s, "jdoe")["directory_server"] == samba_dc.uri


def test_profile_and_form_overrides(samba_dc, server_tls, tls_ctx, make_server):
    d = new_dir()
    s = make_server(directory=d, global_extra=postern.directory_block(
        samba_dc, d, logins="FailureDelay 0s\n    Profile exchange2003\n"
                            "    Form primary-smtp allow\n    Form proxy-address allow"))
    pw = samba_dc.password
    for login, form in (("john.doe@corp.example.test", "primary-smtp"),
                        ("John.Doe@Corp.Example.Test", "primary-smtp"),
                        ("jd@corp.example.de", "proxy-address"),
                        ("JD@CORP.EXAMPLE.DE", "proxy-address")):
        ok, text = imap_login(s, tls_ctx, login, pw)
        ev = last_auth(s, login)
        assert ok and (ev["form"], ev["account"]) == (form, "jdoe"), ev
    # exchange2003: DOMAIN\user\alias authenticates jdoe and opens anna's mailbox
    assert imap_login(s, tls_ctx, "CORP\\jdoe\\anna", pw)[0]
    ev = last_auth(s, "CORP\\jdoe\\anna")
    assert (ev["form"], ev["account"], ev["mailbox"]) == ("domain-name-alias", "jdoe", "anna"), ev
    # anna's mailbox lists jdoe in msExchDelegateListLink; nobody else's password opens it
    assert not imap_login(s, tls_ctx, "CORP\\upnother\\anna", pw)[0]
    assert last_auth(s, "CORP\\upnother\\anna")["reason"] == "mailbox_access_denied"
    # ... but not a blocked account's mailbox, and not a name that is no alias
    for login in ("CORP\\jdoe\\disabled1", "CORP\\jdoe\\asmith"):
        assert not imap_login(s, tls_ctx, login, pw)[0]
        assert last_auth(s, login)["reason"] == "unknown_mailbox", login
    # one primary address, two accounts: never the first hit
    assert not imap_login(s, tls_ctx, "shared@corp.example.test", pw)[0]
    assert last_auth(s, "shared@corp.example.test")["reason"] == "ambiguous_login"


# ---- BlockPrivilegedAccounts ------------------------------------------------------------------

@pytest.fixture(scope="module")
def privileged_server(samba_dc, server_tls):
    d = new_dir()
    s = postern.Posternd(server_tls, directory=d, global_extra=postern.directory_block(
        samba_dc, d, logins="FailureDelay 0s\n    BlockPrivilegedAccounts yes"))
    s.write_config()
    s.start()
    yield s
    s.stop()


def test_block_privileged_accounts_direct_member(privileged_server, samba_dc, tls_ctx):
    before = len(samba_dc.auth_log())
    ok, text = imap_login(privileged_server, tls_ctx, "dadmin", samba_dc.password)
    assert not ok and text == REFUSED_IMAP
    ev = last_auth(privileged_server, "dadmin")
    assert (ev["reason"], ev.get("ad_subcode")) == ("privileged_account", None), ev
    assert imap_login(privileged_server, tls_ctx, "jdoe", samba_dc.password)[0]
    time.sleep(0.3)
    assert not binds_for(samba_dc.auth_log()[before:], "dadmin", samba_dc.dn_of("dadmin"))


def test_block_privileged_accounts_nested_member(privileged_server, samba_dc, tls_ctx):
    """nested1 is in Nested Admins, itself a member of Domain Admins: its memberOf names no
    privileged group, but on AD postern asks the DC (LDAP_MATCHING_RULE_IN_CHAIN, commit
    2c8d872). postern.conf(5) still says only direct membership counts."""
    before = len(samba_dc.auth_log())
    ok, text = imap_login(privileged_server, tls_ctx, "nested1", samba_dc.password)
    ev = last_auth(privileged_server, "nested1")
    assert not ok and text == REFUSED_IMAP
    assert (ev["reason"], ev.get("ad_subcode")) == ("privileged_account", None), ev
    time.sleep(0.3)
    assert not binds_for(samba_dc.auth_log()[before:], "nested1", samba_dc.dn_of("nested1"))


def test_block_privileged_accounts_primary_group(privileged_server, samba_dc, tls_ctx):
    ok, _ = imap_login(privileged_server, tls_ctx, "primary1", samba_dc.password)
    ev = last_auth(privileged_server, "primary1")
    assert not ok and ev["reason"] == "privileged_account", ev


def test_block_privileged_accounts_admin_count(privileged_server, ad_server, samba_dc, tls_ctx):
    """adminCount 1 alone (AD leaves it behind when an account leaves an admin group)."""
    assert samba_dc.account("formeradmin1", ["adminCount"]).first("adminCount") == "1"
    assert imap_login(ad_server, tls_ctx, "formeradmin1", samba_dc.password)[0]
    ok, _ = imap_login(privileged_server, tls_ctx, "formeradmin1", samba_dc.password)
    ev = last_auth(privileged_server, "formeradmin1")
    assert not ok and (ev["reason"], ev.get("ad_subcode")) == ("privileged_account", None), ev


def test_privileged_refusals_by_rid_come_first(privileged_server, samba_dc, tls_ctx):
    """Administrator has adminCount 1 and every admin group, but is refused for its RID."""
    assert not imap_login(privileged_server, tls_ctx, "Administrator", samba_dc.admin_pw)[0]
    assert last_auth(privileged_server, "Administrator")["reason"] == "builtin_administrator"


# ---- secrets ----------------------------------------------------------------------------------

def test_no_password_in_any_log(ad_server, privileged_server, samba_dc):
    secrets = (samba_dc.password, samba_dc.admin_pw, samba_dc.service_pw, "Wrong-Pass-9",
               "Gr\u00fc\u00dfe-Pass-1", "Grusse-Pass-1")
    for server in (ad_server, privileged_server):
        for path in (server.log, server.audit):
            text = open(path).read()
            for secret in secrets:
                assert secret not in text, (path, secret)


def test_protocol_enablement_by_nested_group(samba_dc, server_tls, tls_ctx, make_server):
    """AllowGroup counts nested membership on AD (LDAP_MATCHING_RULE_IN_CHAIN): asmith is in
    IMAP Users only through Sales."""
    d = new_dir()
    group = "CN=IMAP Users,CN=Users,%s" % samba_dc.base_dn
    s = make_server(directory=d, imap_extra='AllowGroup "%s"' % group,
                    global_extra=postern.directory_block(samba_dc, d))
    pw = samba_dc.password
    assert imap_login(s, tls_ctx, "jdoe", pw)[0]
    assert imap_login(s, tls_ctx, "asmith@corp.example.test", pw)[0]
    before = len(samba_dc.auth_log())
    ok, text = imap_login(s, tls_ctx, "upnother", pw)
    assert not ok and text == REFUSED_IMAP
    assert last_auth(s, "upnother")["reason"] == "protocol_not_allowed"
    time.sleep(0.3)
    assert not binds_for(samba_dc.auth_log()[before:], "upnother", samba_dc.dn_of("upnother"))
    # POP3 has no such rule
    p = poplib.POP3_SSL("127.0.0.1", s["pop3s"], context=tls_ctx)
    p.user("upnother")
    assert p.pass_(pw).startswith(b"+OK")
    p.quit()
