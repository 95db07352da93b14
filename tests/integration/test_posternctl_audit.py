# posternctl check-config and audit-log: configurations built to trigger one finding each, and
# audit trails written by a real posternd against the lab slapd (plus a large synthetic one).
import imaplib
import json
import os
import pwd
import random
import subprocess
import time

import pytest

from tests.lab import postern
from tests.lab.wire import Wire

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PW = "Demo-Pass-1"


def posternctl():
    return os.environ.get("POSTERNCTL", os.path.join(ROOT, "build", "posternctl"))


def ctl(conf, *args, user=None, timeout=120):
    """(status, stdout, stderr) of posternctl -c conf args...; as `user` if given."""
    preexec = None
    if user is not None:
        pw = pwd.getpwnam(user)

        def preexec():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
    r = subprocess.run([posternctl(), "-c", conf] + list(args), capture_output=True, text=True,
                       timeout=timeout, preexec_fn=preexec)
    return r.returncode, r.stdout, r.stderr


# ============================================================================
# check-config
# ============================================================================

DEFAULT_PRIORITY = ("SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-DHE-RSA:-AES-128-CBC:"
                    "-AES-256-CBC:-AES-128-CCM:-AES-256-CCM:%SERVER_PRECEDENCE")


def make_keytab(path, principal="MAILHOST$@EXAMPLE.TEST", mode=0o600):
    """A real keytab written by MIT ktutil (no KDC needed for a password-derived key)."""
    if os.path.exists(path):
        os.unlink(path)
    script = ("addent -password -p %s -k 1 -e aes256-cts-hmac-sha1-96\nsecret\nwkt %s\nq\n"
              % (principal, path))
    subprocess.run(["ktutil"], input=script, capture_output=True, text=True, check=True,
                   timeout=30)
    os.chmod(path, mode)
    return path


class Conf:
    """A clean configuration: TLS everywhere, listeners on loopback, ldaps:// with a CA,
    Exchange 2013 rules. Each keyword changes one thing."""

    def __init__(self, d, **kw):
        self.d = d
        self.kw = kw

    def text(self):
        kw, d = self.kw, self.d
        secret = os.path.join(d, "ldap.secret")
        with open(secret, "w") as f:
            f.write("service-password\n")
        os.chmod(secret, kw.get("secret_mode", 0o600))
        lines = ["TLSCertificateFile cert.pem", "TLSKeyFile key.pem"]
        if "priority" in kw:
            lines.append('TLSPriority "%s"' % kw["priority"])
        lines += ["imap {", "    LoginType %s" % kw.get("imap_login_type", "secure-login"), "}",
                  "pop3 {", "    LoginType %s" % kw.get("pop3_login_type", "secure-login"), "}"]
        listeners = [("imap", "imap", "127.0.0.1", 1143, "starttls"),
                     ("imaps", "imap", kw.get("imaps_address", "127.0.0.1"), 1993, "implicit"),
                     ("pop3s", "pop3", "127.0.0.1", 1995, "implicit")]
        for name, proto, addr, port, tls in listeners:
            lines += ["listener %s {" % name, "    Protocol %s" % proto, "    Address %s" % addr,
                      "    Port %d" % port, "    TLS %s" % tls]
            if name == "imaps" and "imaps_allowed" in kw:
                lines.append("    AllowedClients %s" % kw["imaps_allowed"])
            lines.append("}")
        if not kw.get("no_directory"):
            lines += ["directory {", "    URI %s" % kw.get("uri", "ldaps://dc1.example.test"),
                      "    BaseDN dc=example,dc=test"]
            if "keytab" in kw:
                lines.append("    BindKeytab %s" % kw["keytab"])
                if "principal" in kw:
                    lines.append("    BindPrincipal %s" % kw["principal"])
            else:
                lines += ["    BindDN cn=svc-postern,cn=Users,dc=example,dc=test",
                          "    BindPasswordFile %s" % secret]
            lines.append("    CAFile ca.pem")
            if "directory_tls" in kw:
                lines.append("    TLS %s" % kw["directory_tls"])
            if "verify" in kw:
                lines.append("    VerifyCertificate %s" % kw["verify"])
            lines.append("}")
        lines += ["logins {", "    Profile %s" % kw.get("profile", "exchange2013")]
        if "form" in kw:
            lines.append("    Form %s" % kw["form"])
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write(self, name="postern.conf"):
        path = os.path.join(self.d, name)
        with open(path, "w") as f:
            f.write(self.text())
        os.chmod(path, 0o644)
        return path


def line_of(path, needle):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                return n
    raise AssertionError("%r not in %s" % (needle, path))


@pytest.fixture(scope="module")
def cfgdir():
    d = postern.public_dir("posternctl-check-")
    make_keytab(os.path.join(d, "good.keytab"))
    make_keytab(os.path.join(d, "open.keytab"), mode=0o644)
    with open(os.path.join(d, "empty.keytab"), "wb") as f:
        f.write(b"\x05\x02")  # a keytab header and no entry
    os.chmod(os.path.join(d, "empty.keytab"), 0o600)
    with open(os.path.join(d, "junk.keytab"), "wb") as f:
        f.write(random.Random(7).randbytes(100))
    os.chmod(os.path.join(d, "junk.keytab"), 0o600)
    if os.geteuid() == 0:
        make_keytab(os.path.join(d, "nobodys.keytab"))
        nobody = pwd.getpwnam("nobody")
        os.chown(os.path.join(d, "nobodys.keytab"), nobody.pw_uid, nobody.pw_gid)
    return d


def K(cfgdir, name):
    return os.path.join(cfgdir, name)


# id -> (configuration keywords, text on the line the finding must point at, or None for the
# file as a whole)
CASES = {
    "PLAINTEXT_ON_CLEARTEXT_LISTENER": (dict(imap_login_type="plaintext-login"),
                                        "LoginType plaintext-login"),
    "LOGIN_TYPE_BELOW_SECURE_LOGIN": (dict(pop3_login_type="plaintext-login"),
                                      "LoginType plaintext-login"),
    "TLS_PRIORITY_INVALID": (dict(priority="NOT-A-PRIORITY"), "TLSPriority"),
    "TLS_PRIORITY_ENABLES_NOTHING": (dict(priority="SECURE128:-VERS-ALL:+VERS-DTLS1.2"),
                                     "TLSPriority"),
    "TLS_VERSION_BELOW_1_2": (dict(priority=DEFAULT_PRIORITY.replace(
        "+VERS-TLS1.2", "+VERS-TLS1.2:+VERS-TLS1.1")), "TLSPriority"),
    "TLS_WEAK_CIPHER": (dict(priority=DEFAULT_PRIORITY + ":+ARCFOUR-128:+SHA1"), "TLSPriority"),
    "TLS_NO_FORWARD_SECRECY": (dict(priority="NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-DHE-RSA:"
                                             "-AES-128-CBC:-AES-256-CBC:-CAMELLIA-128-CBC:"
                                             "-CAMELLIA-256-CBC:-AES-128-CCM:-AES-256-CCM"),
                               "TLSPriority"),
    "TLS_CBC_CIPHER": (dict(priority=DEFAULT_PRIORITY.replace(":-AES-128-CBC:-AES-256-CBC", "")),
                       "TLSPriority"),
    "PUBLIC_LISTENER_WITHOUT_ALLOWED_CLIENTS": (dict(imaps_address="192.0.2.10"),
                                                "Address 192.0.2.10"),
    "DIRECTORY_NOT_CONFIGURED": (dict(no_directory=True), None),
    "DIRECTORY_WITHOUT_TLS": (dict(uri="ldap://dc1.example.test", directory_tls="none"),
                              "TLS none"),
    "DIRECTORY_WITHOUT_TLS_ON_LOOPBACK": (dict(uri="ldap://127.0.0.1:389", directory_tls="none"),
                                          "TLS none"),
    "DIRECTORY_CERTIFICATE_NOT_VERIFIED": (dict(verify="no"), "VerifyCertificate no"),
    "BIND_PASSWORD_FILE_ACCESSIBLE_BY_OTHERS": (dict(secret_mode=0o644), "directory {"),
    "KEYTAB_MISSING": (dict(keytab="@missing.keytab"), "BindKeytab"),
    "KEYTAB_UNREADABLE": (dict(keytab="@junk.keytab"), "BindKeytab"),
    "KEYTAB_EMPTY": (dict(keytab="@empty.keytab"), "BindKeytab"),
    "KEYTAB_NO_KEY_FOR_PRINCIPAL": (dict(keytab="@good.keytab", principal="OTHER$@EXAMPLE.TEST"),
                                    "BindKeytab"),
    "KEYTAB_ACCESSIBLE_BY_OTHERS": (dict(keytab="@open.keytab"), "BindKeytab"),
    "KEYTAB_NOT_OWNED_BY_ROOT": (dict(keytab="@nobodys.keytab"), "BindKeytab"),
    "CROSS_MAILBOX_LOGIN_FORM": (dict(profile="exchange2003"), "Profile exchange2003"),
}

# Configurations that must produce no finding at all.
CLEAN = {
    "default": {},
    "keytab": dict(keytab="@good.keytab"),
    "keytab-principal-without-realm": dict(keytab="@good.keytab", principal="MAILHOST$"),
    "restricted-public-listener": dict(imaps_address="192.0.2.10", imaps_allowed="198.51.100.0/24"),
    "private-listener": dict(imaps_address="10.1.2.3"),
    "ldap-starttls": dict(uri="ldap://dc1.example.test", directory_tls="starttls"),
    "exchange2003-without-cross-mailbox": dict(profile="exchange2003",
                                               form="domain-name-alias refuse"),
}


def build(cfgdir, name, kw):
    kw = dict(kw)
    if str(kw.get("keytab", "")).startswith("@"):
        kw["keytab"] = K(cfgdir, kw["keytab"][1:])
    d = os.path.join(cfgdir, name)
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    return Conf(d, **kw).write()


def findings(conf, **kw):
    status, out, err = ctl(conf, "check-config", "--format", "json", **kw)
    assert status in (0, 1), err
    doc = json.loads(out)
    assert doc["config"] == conf
    return status, doc["findings"]


@pytest.fixture(scope="module")
def all_findings(cfgdir):
    """Every configuration of CASES and CLEAN, checked once: name -> (path, status, findings)."""
    if os.geteuid() != 0:
        CASES.pop("KEYTAB_NOT_OWNED_BY_ROOT", None)
    result = {}
    for name, (kw, _) in CASES.items():
        path = build(cfgdir, name, kw)
        result[name] = (path,) + findings(path)
    for name, kw in CLEAN.items():
        path = build(cfgdir, "clean-" + name, kw)
        result["clean-" + name] = (path,) + findings(path)
    return result


@pytest.mark.parametrize("finding_id", sorted(CASES))
def test_each_finding_appears_for_its_configuration_only(all_findings, finding_id):
    if finding_id not in all_findings:
        pytest.skip("needs root")
    path, status, found = all_findings[finding_id]
    assert [f["id"] for f in found] == [finding_id], found
    f = found[0]
    needle = CASES[finding_id][1]
    assert f["line"] == (line_of(path, needle) if needle else 0), (f, open(path).read())
    assert f["file"] == path
    assert f["severity"] in ("fail", "warn", "info")
    assert f["message"] and f["fix"]
    assert status == (1 if f["severity"] == "fail" else 0)
    for other, (_, _, others) in all_findings.items():
        if other != finding_id:
            assert finding_id not in [x["id"] for x in others], (other, others)


def test_severities(all_findings):
    sev = {name: v[2][0]["severity"] for name, v in all_findings.items() if name in CASES}
    assert sev["PLAINTEXT_ON_CLEARTEXT_LISTENER"] == "fail"  # as ExchangeAnalyzer POP002
    assert sev["LOGIN_TYPE_BELOW_SECURE_LOGIN"] == "warn"
    for fail in ("TLS_VERSION_BELOW_1_2", "TLS_WEAK_CIPHER", "DIRECTORY_WITHOUT_TLS",
                 "DIRECTORY_CERTIFICATE_NOT_VERIFIED", "KEYTAB_MISSING", "KEYTAB_EMPTY",
                 "KEYTAB_ACCESSIBLE_BY_OTHERS", "TLS_PRIORITY_INVALID"):
        assert sev[fail] == "fail", fail
    assert sev["DIRECTORY_WITHOUT_TLS_ON_LOOPBACK"] == "info"
    assert sev["CROSS_MAILBOX_LOGIN_FORM"] == "warn"


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_configurations_have_no_finding(all_findings, name):
    _, status, found = all_findings["clean-" + name]
    assert found == [] and status == 0


def test_tls_findings_name_the_suites_gnutls_enables(all_findings):
    weak = all_findings["TLS_WEAK_CIPHER"][2][0]["message"]
    assert "TLS_ECDHE_RSA_ARCFOUR_128_SHA1" in weak
    nofs = all_findings["TLS_NO_FORWARD_SECRECY"][2][0]["message"]
    assert "TLS_RSA_AES_256_GCM_SHA384" in nofs and "ECDHE" not in nofs
    old = all_findings["TLS_VERSION_BELOW_1_2"][2][0]["message"]
    assert "TLS1.1" in old and "TLS1.0" not in old


def test_cross_mailbox_form_switched_on_by_form_line(cfgdir):
    path = build(cfgdir, "form-dna", dict(form="domain-name-alias allow"))
    status, found = findings(path)
    assert [(f["id"], f["line"]) for f in found] == [
        ("CROSS_MAILBOX_LOGIN_FORM", line_of(path, "Form domain-name-alias"))]


@pytest.mark.skipif(os.geteuid() != 0, reason="runs posternctl as nobody")
def test_keytab_unreadable_by_the_caller_is_not_judged(cfgdir):
    path = build(cfgdir, "as-nobody", dict(keytab="@good.keytab"))
    status, found = findings(path, user="nobody")
    assert [f["id"] for f in found] == ["KEYTAB_KEYS_NOT_CHECKED"], found
    assert status == 0


def test_table_output_and_exit_statuses(cfgdir, all_findings):
    path = all_findings["PLAINTEXT_ON_CLEARTEXT_LISTENER"][0]
    status, out, _ = ctl(path, "check-config")
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == "check-config: %s" % path
    assert lines[1].split() == ["SEVERITY", "ID", "WHERE"]
    assert lines[2].split() == ["fail", "PLAINTEXT_ON_CLEARTEXT_LISTENER",
                                "%s:%d" % (path, line_of(path, "LoginType plaintext-login"))]
    assert "listener imap" in lines[3]
    assert lines[4].strip().startswith("fix: set LoginType secure-login in the imap block")
    assert lines[-1] == "1 finding: 1 fail, 0 warn, 0 info"
    status, out, _ = ctl(all_findings["clean-default"][0], "check-config")
    assert status == 0 and out.splitlines()[-1] == "no findings"
    # a warning alone does not fail
    assert ctl(all_findings["LOGIN_TYPE_BELOW_SECURE_LOGIN"][0], "check-config")[0] == 0
    # the configuration cannot be read: 3, with the parser's message
    bad = os.path.join(cfgdir, "broken.conf")
    with open(bad, "w") as f:
        f.write("listener x {\n    Protocol smtp\n}\n")
    status, _, err = ctl(bad, "check-config")
    assert status == 3 and "broken.conf:2:" in err
    assert ctl(os.path.join(cfgdir, "absent.conf"), "check-config")[0] == 3
    assert ctl(path, "check-config", "--format", "xml")[0] == 2


# ============================================================================
# audit-log against a real posternd
# ============================================================================

def imaps_login(server, ctx, login, password=PW):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx)
    try:
        m.login(login, password)
        m.logout()
        return True
    except imaplib.IMAP4.error:
        m.logout()
        return False


def wire_login(server, ctx, source, login, password=PW, listener="imaps"):
    with Wire(server[listener], tls_context=ctx if listener == "imaps" else None,
              source=source) as w:
        w.line()
        return w.command("a", "LOGIN %s %s" % (login, password))[-1]


def summary(conf, *args):
    status, out, err = ctl(conf, "audit-log", "--format", "json", *args)
    assert status == 0, err
    return json.loads(out)


def rows(table, key):
    return {r[key] if r[key] is not None else r.get("account_dn"): r for r in table["top"]}


@pytest.fixture(scope="module")
def audited(slapd, server_tls, tls_ctx):
    """A posternd that has seen a known mix of logins; returns (server, expectations)."""
    d = postern.public_dir("posternctl-audit-")
    listeners = postern.standard_listeners()
    listeners.append(postern.Listener("imaps-only1", "imap", "implicit",
                                      extra="    AllowedClients 127.0.0.1/32\n"))
    block = lambda privileged: postern.directory_block(  # noqa: E731
        slapd, d, logins="FailureDelay 0s\n    BlockPrivilegedAccounts %s" % privileged)
    s = postern.Posternd(server_tls, directory=d, listeners=listeners,
                         pop3_extra="LoginType plaintext-login",
                         global_extra=block("yes"))
    s.start()
    try:
        # from 127.0.0.1, over TLS
        assert imaps_login(s, tls_ctx, "jdoe")
        assert imaps_login(s, tls_ctx, "jdoe")
        assert not imaps_login(s, tls_ctx, "jdoe", "wrong-password")   # invalid_credentials
        assert not imaps_login(s, tls_ctx, "nobody")                    # unknown_account
        assert not imaps_login(s, tls_ctx, "disabled1")                 # account_disabled
        assert not imaps_login(s, tls_ctx, "Administrator")             # builtin_administrator
        assert not imaps_login(s, tls_ctx, "dadmin")                    # privileged_account
        # from 127.0.0.2, over TLS
        assert wire_login(s, tls_ctx, "127.0.0.2", "jdoe", "wrong").startswith("a NO")
        assert wire_login(s, tls_ctx, "127.0.0.2", "asmith@example.test").startswith("a OK")
        # from 127.0.0.2 in clear text: IMAP refuses before looking (secure-login) ...
        reply = wire_login(s, None, "127.0.0.2", "jdoe", listener="imap")
        assert "[PRIVACYREQUIRED]" in reply
        # ... POP3 (plaintext-login) takes the password in clear text
        with Wire(s["pop3"], source="127.0.0.2") as w:
            assert w.line().startswith("+OK")
            w.send("USER jdoe\r\n")
            assert w.line().startswith("+OK")
            w.send("PASS %s\r\n" % PW)
            assert w.line().startswith("+OK Logged in")
        # a client the listener does not allow
        with pytest.raises((EOFError, ConnectionError, OSError)):
            with Wire(s["imaps-only1"], tls_context=tls_ctx, source="127.0.0.2") as w:
                w.line()
        # BlockPrivilegedAccounts switched off: the privileged account gets in
        s.global_extra = block("no")
        s.write_config()
        s.reload()
        assert imaps_login(s, tls_ctx, "dadmin")
        deadline = time.monotonic() + 5
        while len(s.audit_events()) < 13 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield s
    finally:
        s.stop()


def test_audit_log_counts_a_real_servers_trail(audited):
    events = audited.audit_events()
    assert len(events) == 13, events
    doc = summary(audited.conf)  # FILE defaults to the configuration's AuditLog
    assert doc["file"] == audited.audit
    assert (doc["lines"], doc["records"], doc["malformed"]["count"]) == (13, 13, 0)
    assert doc["auth"] == {"attempts": 12, "allowed": 5, "refused": 7, "test_login": 0,
                           "unresolved": 2}
    reasons = {r["reason"]: r["count"] for r in doc["by_reason"]["top"]}
    assert reasons == {"ok": 5, "invalid_credentials": 2, "unknown_account": 1,
                       "account_disabled": 1, "builtin_administrator": 1,
                       "privileged_account": 1, "plaintext_requires_tls": 1}
    assert doc["by_reason"]["exact"] and doc["by_reason"]["others_count"] == 0
    clients = rows(doc["by_client"], "client")
    assert set(clients) == {"127.0.0.1", "127.0.0.2"}
    assert (clients["127.0.0.1"]["count"], clients["127.0.0.1"]["refused"],
            clients["127.0.0.1"]["cleartext"]) == (8, 5, 0)
    assert (clients["127.0.0.2"]["count"], clients["127.0.0.2"]["refused"],
            clients["127.0.0.2"]["cleartext"]) == (4, 2, 2)
    mechs = rows(doc["by_mechanism"], "mechanism")
    assert mechs["LOGIN-COMMAND"]["count"] == 12 and mechs["LOGIN-COMMAND"]["refused"] == 7
    accounts = {r["account"]: r for r in doc["by_account"]["top"]}
    jdoe = accounts["jdoe"]
    assert (jdoe["count"], jdoe["allowed"], jdoe["refused"], jdoe["cleartext_allowed"]) == (
        5, 3, 2, 1)
    assert jdoe["account_dn"] == "cn=John Doe,ou=Staff,dc=example,dc=test"
    assert accounts["asmith"]["allowed"] == 1 and accounts["dadmin"]["allowed"] == 1
    offenders = rows(doc["top_offenders"]["clients"], "client")
    assert offenders["127.0.0.1"]["count"] == 5 and offenders["127.0.0.2"]["count"] == 2
    logins = rows(doc["top_offenders"]["logins"], "login")
    assert logins["jdoe"]["count"] == 3 and logins["administrator"]["count"] == 1
    clear = doc["cleartext"]
    assert (clear["attempts"], clear["allowed"], clear["refused"],
            clear["plaintext_requires_tls"]) == (2, 1, 1, 1)
    assert [(r["account"], r["count"]) for r in clear["logins_by_account"]["top"]] == [("jdoe", 1)]
    priv = {r["account"]: r for r in doc["privileged_accounts"]}
    assert set(priv) == {"Administrator", "dadmin"}
    assert (priv["dadmin"]["privileged_account"], priv["dadmin"]["allowed"],
            priv["dadmin"]["allowed_exact"]) == (1, 1, True)
    assert (priv["Administrator"]["builtin_administrator"], priv["Administrator"]["allowed"]) == (
        1, 0)
    refused = doc["connections_refused"]
    assert refused["count"] == 1
    assert [(r["reason"], r["count"]) for r in refused["by_reason"]["top"]] == [
        ("client_not_allowed", 1)]
    assert [(r["client"], r["count"]) for r in refused["by_client"]["top"]] == [("127.0.0.2", 1)]

    # the table says the same
    status, out, _ = ctl(audited.conf, "audit-log")
    assert status == 0
    assert "Authentication attempts: 12  allowed: 5  refused: 7 (58.3%)" in out
    assert "Cleartext sessions (tls false): attempts: 2" in out
    assert "dadmin" in out.split("Privileged accounts")[1]


def test_audit_log_since_and_garbage(audited, tmp_path):
    log = tmp_path / "audit.log"
    text = open(audited.audit).read()
    garbage = ["not json at all", "[1, 2, 3]", '{"event":"auth"}',
               '{"time":"yesterday","event":"auth","result":"allow","reason":"ok"}',
               '{"time":"2026-01-01T00:00:00Z","event":"auth","reason":"ok"}',
               "x" * 200000, ""]
    log.write_text(garbage[0] + "\n" + text + "\n".join(garbage[1:]) + "\n")
    doc = summary(audited.conf, str(log))
    assert doc["records"] == 13
    assert doc["malformed"]["count"] == 6
    assert doc["malformed"]["by_kind"] == {"too_long": 1, "not_json": 1, "not_object": 1,
                                           "missing_field": 2, "bad_time": 1}
    assert doc["malformed"]["first_lines"] == [1, 15, 16, 17, 18]
    assert doc["blank"] == 1
    assert summary(audited.conf, "--since", "1h", str(log))["records"] == 13
    future = summary(audited.conf, "--since", "2999-01-01T00:00:00+02:00", str(log))
    assert future["records"] == 0 and future["skipped_before_since"] == 13
    assert future["since"] == "2998-12-31T22:00:00.000Z"
    status, _, err = ctl(audited.conf, "audit-log", "--since", "yesterday")
    assert status == 2 and "--since" in err
    assert ctl(audited.conf, "audit-log", str(tmp_path / "absent.log"))[0] == 3


# ============================================================================
# audit-log: a large synthetic trail in bounded memory
# ============================================================================

def synthetic_log(path, n, seed=1):
    """n lines: records with a few heavy clients and logins among many distinct ones, plus
    garbage every 100,000 lines. Returns the exact expectations."""
    rnd = random.Random(seed)
    reasons = ["ok"] * 6 + ["invalid_credentials"] * 3 + ["unknown_account",
                                                           "plaintext_requires_tls"]
    exp = {"records": 0, "malformed": 0, "auth": 0, "refused": 0, "reasons": {},
           "attacker": 0, "clear": 0}
    with open(path, "w") as f:
        for i in range(n):
            if i % 100000 == 99999:
                f.write("garbage line %d {\n" % i)
                exp["malformed"] += 1
                continue
            if i % 10 == 0:
                client, reason, user = "198.51.100.66", "invalid_credentials", "administrator"
                exp["attacker"] += 1
            else:
                client = "10.%d.%d.%d" % (rnd.randrange(8), rnd.randrange(256), rnd.randrange(256))
                reason, user = rnd.choice(reasons), "user%d" % rnd.randrange(200000)
            tls = "false" if reason == "plaintext_requires_tls" else "true"
            ok = reason == "ok"
            line = ('{"time":"2026-02-01T%02d:%02d:%02d.000Z","event":"auth","conn":%d,'
                    '"listener":"imaps","protocol":"imap","client":"%s","client_port":4000,'
                    '"tls":%s,"login_type":"secure-login","mechanism":"LOGIN-COMMAND",'
                    '"login":"%s","result":"%s","reason":"%s","latency_ms":1'
                    % (i // 3600000 % 24, i // 60000 % 60, i // 1000 % 60, i, client, tls, user,
                       "allow" if ok else "deny", reason))
            if reason in ("ok", "invalid_credentials"):
                line += ',"account_dn":"CN=%s,OU=Staff,DC=example,DC=com","account":"%s"' % (
                    user, user)
            f.write(line + "}\n")
            exp["records"] += 1
            exp["auth"] += 1
            exp["refused"] += not ok
            exp["clear"] += tls == "false"
            exp["reasons"][reason] = exp["reasons"].get(reason, 0) + 1
    return exp


def run_measured(args, out_path):
    """(status, stdout, peak RSS in KiB) of posternctl. The peak is VmHWM from
    /proc/PID/status, read until the process exits: wait4()'s ru_maxrss would include the
    pytest process that forked it."""
    with open(out_path, "w") as out:
        p = subprocess.Popen([posternctl()] + args, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0
        while p.poll() is None:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.005)
    with open(out_path) as f:
        return p.returncode, f.read(), peak


@pytest.fixture(scope="module")
def big_logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("biglog")
    small, big = d / "small.log", d / "big.log"
    yield (small, synthetic_log(small, 100000, seed=2)), (big, synthetic_log(big, 1000000))
    for path in (small, big):  # 35 + 350 MB that pytest would otherwise keep
        path.unlink()


def test_a_million_lines_in_bounded_memory(big_logs, audited):
    (small, small_exp), (big, exp) = big_logs
    status, out, small_rss = run_measured(["-c", audited.conf, "audit-log", "--format", "json",
                                           str(small)], str(small) + ".json")
    assert status == 0
    t0 = time.monotonic()
    status, out, rss = run_measured(["-c", audited.conf, "audit-log", "--format", "json",
                                     str(big)], str(big) + ".json")
    elapsed = time.monotonic() - t0
    assert status == 0
    doc = json.loads(out)
    print("\naudit-log: 1,000,000 lines (%d MB) in %.1f s, VmHWM %d KiB (100,000 lines: %d KiB)"
          % (os.path.getsize(big) // 1000000, elapsed, rss, small_rss))
    assert doc["lines"] == 1000000
    assert doc["records"] == exp["records"]
    assert doc["malformed"]["count"] == exp["malformed"] == 10
    assert doc["malformed"]["by_kind"]["not_json"] == 10
    assert doc["auth"]["attempts"] == exp["auth"] and doc["auth"]["refused"] == exp["refused"]
    assert {r["reason"]: r["count"] for r in doc["by_reason"]["top"]} == exp["reasons"]
    assert doc["cleartext"]["attempts"] == exp["clear"]
    # far more distinct clients than counters: approximate, but the heavy hitter is found with
    # its count within the stated bound
    assert not doc["by_client"]["exact"] and doc["by_client"]["distinct"] is None
    top = doc["top_offenders"]["clients"]["top"][0]
    assert top["client"] == "198.51.100.66"
    assert top["count"] - top["overcount"] <= exp["attacker"] <= top["count"]
    assert doc["top_offenders"]["logins"]["top"][0]["login"] == "administrator"
    assert len(doc["by_client"]["top"]) == 20
    # memory is the tables, not the log: 10x the lines, about the same peak (ASan builds keep
    # freed memory in quarantine: their figures say nothing about the program)
    if not postern.sanitized(posternctl()):
        assert 0 < rss < 32 * 1024, rss
        assert rss < small_rss * 1.25 + 1024, (rss, small_rss)


def test_space_saving_bounds_with_few_counters(tmp_path, audited):
    """--capacity 16: heavy keys stay exact enough, every count is an upper bound within its
    overcount, and 'others' adds up."""
    log = tmp_path / "skew.log"
    # N = 6500 records, 16 counters: a key over N/16 = 406 is always monitored, and no count
    # is more than 406 too high, so these three keep their order
    heavy = {"192.0.2.1": 2000, "192.0.2.2": 1000, "192.0.2.3": 500}
    lines = []
    for client, n in heavy.items():
        lines += [client] * n
    lines += ["203.0.113.%d" % (i % 250) + ".%d" % (i // 250) for i in range(3000)]
    random.Random(3).shuffle(lines)
    with open(log, "w") as f:
        for i, client in enumerate(lines):
            f.write('{"time":"2026-02-01T00:00:00Z","event":"auth","client":"%s","tls":true,'
                    '"mechanism":"PLAIN","login":"u%d","result":"deny",'
                    '"reason":"unknown_account"}\n' % (client, i))
    doc = summary(audited.conf, "--capacity", "16", "--top", "3", str(log))
    table = doc["by_client"]
    assert table["total"] == len(lines) and not table["exact"]
    got = [(r["client"], r["count"], r["overcount"]) for r in table["top"]]
    assert [c for c, _, _ in got] == list(heavy)
    for client, count, over in got:
        assert count - over <= heavy[client] <= count
    assert table["others_count"] == len(lines) - sum(c for _, c, _ in got)


def test_table_output_never_passes_control_characters(tmp_path, audited):
    log = tmp_path / "evil.log"
    log.write_text('{"time":"2026-02-01T00:00:00Z","event":"auth","client":"192.0.2.9",'
                   '"tls":true,"mechanism":"PLAIN","login":"evil\\u001b[2J\\u009b",'
                   '"result":"deny","reason":"unknown_account"}\n')
    status, out, _ = ctl(audited.conf, "audit-log", str(log))
    assert status == 0
    assert "\x1b" not in out and "\u009b" not in out
    assert "evil\\x1b[2j\\xc2\\x9b" in out  # lower-cased login, escaped
