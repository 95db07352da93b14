# Proves the directory lab behaves like the AD data postern relies on: real slapd, real KDC, real clients.
import os
import select
import shlex
import signal
import subprocess
import sys

import pytest

from tests.lab import PASSWORD, SAMPLE_LDIF, Slapd, ad, ldif, ports
from tests.lab.slapd import REPO

STAFF = "ou=Staff,dc=example,dc=test"
USERS = "cn=Users,dc=example,dc=test"


def one(entries):
    assert len(entries) == 1, entries
    return entries[0]


def find(slapd, filterstr, *attrs):
    return slapd.search(filterstr, list(attrs) or ["1.1"])


# ----------------------------------------------------- sample data, offline --

def test_nt_hash_matches_known_vector():
    # Widely published NT hash of "password"; our MD4 has no OpenSSL to lean on.
    assert ad.nt_hash("password") == "8846F7EAEE8FB117AD06BDD830B7586C"


def test_sample_ldif_sids_guids_and_passwords_are_consistent():
    with open(SAMPLE_LDIF, "rb") as f:
        entries = ldif.parse(f.read())
    accounts = [e for e in entries if "sAMAccountName" in e]
    rids = {}
    for e in accounts:
        sid = ad.sid_from_bytes(e.raw("objectSid")[0])
        assert sid.startswith(ad.DOMAIN_SID + "-"), (e.dn, sid)
        rids[e.first("sAMAccountName")] = ad.rid_of(e.raw("objectSid")[0])
        assert len(e.raw("objectGUID")[0]) == 16
    assert len(set(rids.values())) == len(rids), "RIDs must be unique"
    guids = [e.raw("objectGUID")[0] for e in accounts]
    assert len(set(guids)) == len(guids), "objectGUIDs must be unique"
    assert {k: rids[k] for k in ("Administrator", "Guest", "krbtgt", "jdoe", "asmith",
                                 "Domain Admins", "Domain Users", "Schema Admins",
                                 "Enterprise Admins")} == {
        "Administrator": 500, "Guest": 501, "krbtgt": 502, "jdoe": 1104, "asmith": 1105,
        "Domain Admins": 512, "Domain Users": 513, "Schema Admins": 518,
        "Enterprise Admins": 519}
    for e in accounts:
        if "user" in e.text("objectClass"):
            assert e.first("sambaNTPassword") == ad.nt_hash(PASSWORD), e.dn
            assert e.first("userPassword").startswith("{SSHA}"), e.dn


# ------------------------------------------------------------- lookups --

def test_jdoe_found_by_sam_account_name_case_insensitively(slapd):
    assert one(find(slapd, "(sAMAccountName=JDOE)")).dn == "cn=John Doe," + STAFF


def test_jdoe_found_by_upn_alias_and_proxy_addresses(slapd):
    dn = "cn=John Doe," + STAFF
    assert one(find(slapd, "(userPrincipalName=jdoe@example.test)")).dn == dn
    assert one(find(slapd, "(userPrincipalName=JDoe@Example.Test)")).dn == dn
    assert one(find(slapd, "(mailNickname=jdoe)")).dn == dn
    # smtp: (secondary) and SMTP: (primary) match regardless of case, as in AD.
    assert one(find(slapd, "(proxyAddresses=smtp:jd@example.de)")).dn == dn
    assert one(find(slapd, "(proxyAddresses=smtp:JOHN.DOE@example.test)")).dn == dn


def test_jdoe_upn_differs_from_primary_mail(slapd):
    jdoe = one(find(slapd, "(sAMAccountName=jdoe)", "mail", "userPrincipalName", "proxyAddresses"))
    assert jdoe.first("mail") == "john.doe@example.test"
    assert jdoe.first("userPrincipalName") == "jdoe@example.test"
    assert sorted(jdoe.text("proxyAddresses")) == sorted(
        ["SMTP:john.doe@example.test", "smtp:jdoe@example.test", "smtp:jd@example.de"])


def test_asmith_alias_is_anna(slapd):
    asmith = one(find(slapd, "(sAMAccountName=asmith)", "mailNickname", "mail"))
    assert asmith.text("mailNickname") == ["anna"]
    assert asmith.first("mail") == "anna.smith@example.test"
    assert find(slapd, "(mailNickname=asmith)") == []


def test_shared_alias_matches_two_accounts(slapd):
    hits = find(slapd, "(mailNickname=shared)", "sAMAccountName")
    assert sorted(e.first("sAMAccountName") for e in hits) == ["dup1", "dup2"]


def test_escaped_star_matches_nobody(slapd):
    assert find(slapd, "(sAMAccountName=\\2a)") == []
    assert find(slapd, "(sAMAccountName=%s)" % ldif.escape_filter_value("*")) == []
    assert len(find(slapd, "(sAMAccountName=*)")) > 10   # the unescaped wildcard, for contrast


def test_group_with_alias_is_not_a_user(slapd):
    # MailUsers is mail-enabled, so lookups must restrict themselves to users.
    assert len(find(slapd, "(mailNickname=MailUsers)")) == 1
    assert find(slapd, "(&(objectClass=user)(mailNickname=MailUsers))") == []


def test_computer_account_is_a_user_too(slapd):
    ws = one(find(slapd, "(&(objectClass=user)(sAMAccountName=ws01$))",
                  "objectClass", "userAccountControl"))
    assert "computer" in ws.text("objectClass")
    assert int(ws.first("userAccountControl")) & ad.UF_WORKSTATION_TRUST_ACCOUNT


# ----------------------------------------------------- groups and SIDs --

def test_dadmin_member_of_domain_admins(slapd):
    dadmin = one(find(slapd, "(sAMAccountName=dadmin)", "memberOf", "adminCount"))
    assert "cn=Domain Admins," + USERS in dadmin.text("memberOf")
    assert dadmin.first("adminCount") == "1"


def test_member_of_is_operational_and_direct_only(slapd):
    # Not returned for "*": postern must ask for memberOf by name.
    assert "memberOf" not in one(find(slapd, "(sAMAccountName=dadmin)", "*"))
    # asmith is in Sales, Sales in MailUsers: memberOf shows only the direct group,
    # and slapd has no transitive rule (1.2.840.113556.1.4.1941): it matches nothing.
    asmith = one(find(slapd, "(sAMAccountName=asmith)", "memberOf"))
    assert asmith.text("memberOf") == ["cn=Sales," + STAFF]
    assert find(slapd, "(memberOf:1.2.840.113556.1.4.1941:=cn=MailUsers,%s)" % STAFF) == []


def test_administrator_sid_has_rid_500(slapd):
    admin = one(find(slapd, "(sAMAccountName=administrator)", "objectSid", "objectGUID"))
    raw = admin.raw("objectSid")[0]
    assert ad.sid_from_bytes(raw) == ad.DOMAIN_SID + "-500"
    assert ad.rid_of(raw) == 500
    assert admin.raw("objectGUID")[0] == ad.fixed_guid("Administrator")


def test_search_by_binary_sid(slapd):
    sid = ad.sid_to_bytes(ad.DOMAIN_SID + "-1104")
    assert one(find(slapd, "(objectSid=%s)" % ldif.escape_filter_value(sid))).dn == \
        "cn=John Doe," + STAFF


def test_netbios_name_from_cross_ref(slapd):
    ref = one(slapd.search("(&(objectClass=crossRef)(nCName=%s))" % slapd.base_dn,
                           ["nETBIOSName", "dnsRoot"], scope="one",
                           base="cn=Partitions,cn=Configuration," + slapd.base_dn))
    assert (ref.first("nETBIOSName"), ref.first("dnsRoot")) == (slapd.netbios, slapd.domain)


# ------------------------------------------------------- account state --

def test_account_state_attributes(slapd):
    def state(sam):
        return one(find(slapd, "(sAMAccountName=%s)" % sam, "userAccountControl",
                        "msDS-User-Account-Control-Computed", "lockoutTime",
                        "accountExpires", "pwdLastSet"))
    assert int(state("disabled1").first("userAccountControl")) & ad.UF_ACCOUNTDISABLE
    locked = state("locked1")
    assert int(locked.first("msDS-User-Account-Control-Computed")) == ad.UF_LOCKOUT
    assert int(locked.first("lockoutTime")) > 0
    expired = ad.filetime_to_datetime(state("expired1").first("accountExpires"))
    assert expired is not None and expired.year == 2020
    must = state("mustchange1")
    assert must.first("pwdLastSet") == "0"
    assert int(must.first("msDS-User-Account-Control-Computed")) == ad.UF_PASSWORD_EXPIRED
    assert ad.filetime_to_datetime(state("jdoe").first("accountExpires")) is None
    assert ad.filetime_to_datetime(state("asmith").first("accountExpires")) is None


def test_protocol_settings_disable_pop3_for_nopop1(slapd):
    value = one(find(slapd, "(sAMAccountName=nopop1)", "protocolSettings")).first("protocolSettings")
    assert value.split("\u00a7")[:2] == ["POP3", "0"]


# ---------------------------------------------------------------- binds --

def test_jdoe_binds_with_demo_password(slapd):
    assert slapd.bind(slapd.dn_of("jdoe"), PASSWORD) == 0


def test_wrong_password_gives_49(slapd):
    assert slapd.bind(slapd.dn_of("jdoe"), "Wrong-Pass-1") == 49


def test_disabled_accounts_cannot_bind(slapd):
    for sam in ("disabled1", "Guest", "krbtgt"):
        assert slapd.bind(slapd.dn_of(sam), PASSWORD) == 49, sam


def test_empty_password_is_an_anonymous_bind(slapd):
    # Like AD: DN + empty password "succeeds" but authenticates nobody.
    assert slapd.bind(slapd.dn_of("jdoe"), "") == 0
    assert slapd.search("(sAMAccountName=jdoe)", bind_dn=slapd.dn_of("jdoe"), password="") == []


def test_starttls_bind(slapd):
    if slapd.ca_cert is None:
        pytest.skip("certtool (gnutls-bin) not installed: slapd runs without TLS")
    assert slapd.bind(slapd.dn_of("jdoe"), PASSWORD, starttls=True) == 0


# ----------------------------------------------------------------- ACLs --

def test_anonymous_sees_root_dse_but_no_accounts(slapd):
    root = one(slapd.search("(objectClass=*)", ["namingContexts"], base="", scope="base",
                            bind_dn=None))
    assert root.text("namingContexts") == [slapd.base_dn]
    assert slapd.search("(sAMAccountName=jdoe)", bind_dn=None) == []


def test_passwords_unreadable_and_nt_hash_only_for_service(slapd):
    jdoe_dn = slapd.dn_of("jdoe")
    as_service = one(find(slapd, "(sAMAccountName=jdoe)", "userPassword", "sambaNTPassword"))
    assert "userPassword" not in as_service
    assert as_service.first("sambaNTPassword") == ad.nt_hash(PASSWORD)
    as_self = one(slapd.search("(sAMAccountName=jdoe)", ["userPassword", "sambaNTPassword", "mail"],
                               bind_dn=jdoe_dn, password=PASSWORD))
    assert "userPassword" not in as_self and "sambaNTPassword" not in as_self
    assert as_self.first("mail") == "john.doe@example.test"


# ------------------------------------------------------------- Kerberos --

def test_kinit_jdoe_and_wrong_password(kdc, tmp_path):
    good = kdc.kinit("jdoe", PASSWORD, tmp_path / "good.cc")
    assert good.returncode == 0, good.stderr
    assert "Default principal: jdoe@EXAMPLE.TEST" in kdc.klist(tmp_path / "good.cc")
    bad = kdc.kinit("jdoe", "Wrong-Pass-1", tmp_path / "bad.cc")
    assert bad.returncode != 0
    assert b"Password incorrect" in bad.stderr
    assert kdc.klist(tmp_path / "bad.cc") == ""


def test_kdc_refuses_disabled_principal(kdc, tmp_path):
    done = kdc.kinit("disabled1", PASSWORD, tmp_path / "d.cc")
    assert done.returncode != 0 and b"revoked" in done.stderr


def test_keytab_holds_imap_and_pop_aes_keys(kdc):
    entries = kdc.keytab_entries()
    principals = {p for p, _ in entries}
    assert principals == {"imap/localhost@EXAMPLE.TEST", "pop/localhost@EXAMPLE.TEST",
                          "imap/mail.example.test@EXAMPLE.TEST",
                          "pop/mail.example.test@EXAMPLE.TEST"}
    assert {e for _, e in entries} == {"aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"}


def test_kdc_env_is_private(kdc):
    env = kdc.env()
    assert env["KRB5_CONFIG"].startswith(kdc.workdir)
    assert env["KRB5_KTNAME"] == "FILE:" + kdc.keytab
    assert not env["KRB5_CONFIG"].startswith("/etc")


# ------------------------------------------------------------ lifecycle --

def test_stop_ends_the_process_and_frees_the_port(tmp_path):
    ldap = Slapd(tmp_path / "own", ldif_path=None).start()
    pid, port = ldap.pid, ldap.port
    assert ports.tcp_accepts(ldap.host, port)
    ldap.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)          # reaped, not a zombie
    assert not ports.tcp_accepts(ldap.host, port)
    assert (tmp_path / "own" / "slapd.log").exists()   # stop() removes nothing by default


def _read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, _, value = line.rstrip("\n").partition("=")
                env[key] = shlex.split(value)[0] if value else ""
    return env


def test_run_lab_serves_until_sigterm(tmp_path):
    script = os.path.join(REPO, "tests", "lab", "run_lab.py")
    proc = subprocess.Popen([sys.executable, script, "--dir", str(tmp_path / "lab")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "run_lab.py printed nothing within 15 s"
        assert proc.stdout.readline() == b"lab ready\n", proc.stderr.read()
        env = _read_env(tmp_path / "lab" / "lab.env")
        for key in ("LDAP_URI", "LDAP_BASE", "LDAP_SERVICE_DN", "LDAP_SERVICE_PW",
                    "KRB5_CONFIG", "KRB5_KTNAME", "SLAPD_PID", "KDC_PID"):
            assert env.get(key), key
        pids = [int(env["SLAPD_PID"]), int(env["KDC_PID"])]
        for pid in pids:
            os.kill(pid, 0)      # alive
        assert ports.tcp_accepts("127.0.0.1", int(env["LDAP_PORT"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(10)
    assert status == 0, proc.stderr.read()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not ports.tcp_accepts("127.0.0.1", int(env["LDAP_PORT"]))
