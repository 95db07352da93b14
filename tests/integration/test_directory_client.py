# The directory client (src/directory) against the lab slapd: lookups over verified StartTLS,
# ambiguity, filter injection, binds, failover, timeouts, naming, pooling under threads.
"""The client is driven through tests/tools/dirprobe.c, a small CLI linked with libpostern.a
and built here with cc (the Makefile has no rule for it). The library comes from, in order:
$DIRPROBE_LIB, the build directory of $POSTERND (what `make check-integration` sets), build/.
"""
import json
import os
import re
import select
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from tests.lab import tools, ad, tls as tls_lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JDOE_DN = "cn=John Doe,ou=Staff,dc=example,dc=test"
PASSWORD = "Demo-Pass-1"


@pytest.fixture(scope="module")
def dirprobe(tmp_path_factory):
    return tools.build_tool("dirprobe", tmp_path_factory.mktemp("dirprobe"), "DIRPROBE_LIB")


@pytest.fixture(scope="module")
def service_pw_file(tmp_path_factory, slapd):
    path = tmp_path_factory.mktemp("dirsecret") / "bind.pw"
    path.write_text(slapd.service_pw + "\n")
    return str(path)


class Probe:
    """argv builder for dirprobe; run() returns the JSON answer of one command."""

    def __init__(self, exe, slapd, pw_file):
        self.exe, self.slapd, self.pw_file = exe, slapd, pw_file

    def argv(self, uris=None, ca=None, verify=True, tls=True, bind=True, net=2, op=2, pool=2,
             base=None, extra=()):
        argv = [self.exe, "-b", base or self.slapd.base_dn, "-n", str(net), "-t", str(op),
                "-p", str(pool)]
        if bind:
            argv += ["-D", self.slapd.service_dn, "-y", self.pw_file]
        for u in uris or [self.slapd.uri]:
            argv += ["-H", u]
        if not tls:
            argv.append("-N")
        ca = ca or self.slapd.ca_cert
        if ca:
            argv += ["-C", ca]
        if not verify:
            argv.append("-k")
        return argv + list(extra)

    def run(self, *command, timeout=30, **kw):
        done = subprocess.run(self.argv(**kw) + list(command), capture_output=True, text=True,
                              timeout=timeout, env=_clean_env())
        assert done.stdout, "dirprobe printed nothing (rc %d): %s" % (done.returncode, done.stderr)
        _no_sanitizer_report(done.stderr)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout.splitlines()[0])
        answer["stderr"] = done.stderr
        return answer

    def session(self, **kw):
        return Session(subprocess.Popen(self.argv(**kw) + ["-"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=_clean_env()))


class Session:
    """One dirprobe process reading commands from stdin: one directory, pools kept."""

    def __init__(self, proc):
        self.proc = proc

    def __call__(self, *command):
        self.proc.stdin.write("\t".join(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "dirprobe session ended: %s" % self.proc.stderr.read()
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=10)
        stderr = self.proc.stderr.read()
        _no_sanitizer_report(stderr)
        assert rc == 0, stderr


def _no_sanitizer_report(stderr):
    # a SANITIZE=1 library: leaks and undefined behaviour show up on stderr
    assert "Sanitizer" not in stderr and "runtime error" not in stderr, stderr


def _clean_env():
    # The client must not depend on ldap.conf; make a hostile one to prove it.
    env = dict(os.environ)
    env["LDAPRC"] = "postern-no-ldaprc"
    return env


@pytest.fixture(scope="module")
def probe(dirprobe, slapd, service_pw_file):
    if slapd.ca_cert is None:
        pytest.skip("slapd without TLS (certtool missing)")
    return Probe(dirprobe, slapd, service_pw_file)


def closed_port():
    """A loopback port with nothing listening: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """TCP relay to slapd that can cut every connection or stop listening (a server going away).

    With `tls` = (cert, key) it terminates TLS itself and relays plain LDAP: an ldaps:// server.
    """

    def __init__(self, target_port, host="127.0.0.1", port=0, tls=None):
        self.target = ("127.0.0.1", target_port)
        self.host = host
        self.port = port
        self.ssl = None
        if tls:
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl.load_cert_chain(*tls)
        self.lock = threading.Lock()
        self.socks = []
        self.listener = None
        self.open()

    @property
    def uri(self):
        return "%s://%s:%d" % ("ldaps" if self.ssl else "ldap", self.host, self.port)

    def open(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port))
        ls.listen(16)
        ls.settimeout(0.05)
        self.port = ls.getsockname()[1]
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while self.listener is ls:
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            with self.lock:
                self.socks.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        # one thread per connection moves both directions: an SSL socket must not be read
        # and written from two threads at once
        try:
            if self.ssl:
                c = self.ssl.wrap_socket(c, server_side=True)
            up = socket.create_connection(self.target)
            with self.lock:
                self.socks += [c, up]
            while True:
                ready = [c] if self.ssl and c.pending() else \
                    select.select([c, up], [], [], 1.0)[0]
                for a in ready:
                    data = a.recv(65536)
                    if not data:
                        return
                    (up if a is c else c).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def cut(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
            s.close()

    def close(self):
        ls, self.listener = self.listener, None
        if ls is not None:
            ls.close()
        self.cut()


def log_count(slapd, pattern):
    with open(slapd.log_path, errors="replace") as f:
        return sum(1 for line in f if re.search(pattern, line))


# ----------------------------------------------------------------------------- lookups --

def test_find_jdoe_over_verified_starttls(probe, slapd):
    starttls = r"EXT oid=1\.3\.6\.1\.4\.1\.1466\.20037"
    before = log_count(slapd, starttls)
    r = probe.run("find", "(sAMAccountName=JDOE)")
    assert r["status"] == "OK" and r["server"] == slapd.uri
    assert r["n_matched"] == 1
    (a,) = r["accounts"]
    assert a["dn"] == JDOE_DN
    assert a["sam_account_name"] == "jdoe"
    assert a["upn"] == "jdoe@example.test"
    assert a["alias"] == "jdoe"
    assert a["mail"] == "john.doe@example.test"
    assert a["proxy_addresses"] == ["SMTP:john.doe@example.test", "smtp:jdoe@example.test",
                                    "smtp:jd@example.de"]
    # objectGUID in AD's mixed-endian layout, shown as the GUID AD tools print
    assert a["guid"] == str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))
    assert a["sid"] == "%s-1104" % slapd.domain_sid and a["has_sid"] and a["rid"] == 1104
    assert a["has_uac"] and a["uac"] == 512
    assert a["has_uac_computed"] and a["uac_computed"] == 0
    assert a["account_expires"] == 2**63 - 1
    assert a["has_pwd_last_set"] and a["pwd_last_set"] == 133497828000000000
    assert a["admin_count"] == 0 and not a["is_computer"]
    assert a["member_of"] == ["cn=MailUsers,ou=Staff,dc=example,dc=test"]
    assert a["protocol_settings"] == []
    time.sleep(0.1)
    assert log_count(slapd, starttls) > before, "no StartTLS in slapd's log"


def test_special_accounts_decoded(probe, slapd):
    def one(sam):
        r = probe.run("find-eq", "sAMAccountName", sam)
        assert r["status"] == "OK" and r["n_matched"] == 1, r
        return r["accounts"][0]

    admin = one("administrator")
    assert admin["rid"] == 500 and admin["admin_count"] == 1
    assert admin["sid"] == "S-1-5-21-1004336348-1177238915-682003330-500"
    assert one("WS01$")["is_computer"]
    locked = one("locked1")
    assert locked["uac_computed"] & 0x10 and locked["lockout_time"] > 0
    assert one("mustchange1")["pwd_last_set"] == 0
    assert one("asmith")["account_expires"] == 0
    (setting,) = one("nopop1")["protocol_settings"]
    assert setting.startswith("POP3\u00a70\u00a7")
    # no objectGUID: entryUUID, lower case
    r = probe.run("find", "(ou=Staff)")
    assert r["status"] == "OK"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        r["accounts"][0]["guid"])


def test_shared_alias_is_ambiguous(probe):
    r = probe.run("find", "(mailNickname=shared)", "1")
    assert r["status"] == "OK" and r["n_matched"] == 2 and len(r["accounts"]) == 1
    r = probe.run("find", "(mailNickname=shared)", "5")
    assert r["n_matched"] == 2
    assert sorted(a["sam_account_name"] for a in r["accounts"]) == ["dup1", "dup2"]


@pytest.mark.parametrize("value", ["*", "jdoe)(sAMAccountName=*", "*)(|(objectClass=*",
                                   "jdoe\\", "j*", "jdoe*", "(", ")", "\\2a", "jdoe)"])
def test_injection_values_match_nobody(probe, value):
    r = probe.run("find-eq", "sAMAccountName", value, "5")
    assert r["status"] == "OK" and r["n_matched"] == 0, r


def test_escaped_value_still_finds_the_account(probe):
    r = probe.run("find-eq", "userPrincipalName", "JDOE@example.test")
    assert r["n_matched"] == 1 and r["accounts"][0]["dn"] == JDOE_DN
    assert probe.run("escape", "a*)(uid=*")["escaped"] == "a\\2a\\29\\28uid=\\2a"


def test_anonymous_lookups_see_nothing(probe):
    # the lab, like AD, shows accounts only to bound clients: the service bind matters.
    # slapd even hides the base entry (noSuchObject, so ERROR); AD answers operationsError.
    r = probe.run("find", "(sAMAccountName=jdoe)", bind=False)
    assert r["status"] in ("OK", "ERROR") and r["n_matched"] == 0 and r["accounts"] == []


def test_bad_filter_and_base_are_errors(probe):
    assert probe.run("find", "(sAMAccountName=jdoe")["status"] == "ERROR"
    r = probe.run("find", "(sAMAccountName=jdoe)", base="dc=nowhere,dc=test")
    assert r["status"] == "ERROR"


# ------------------------------------------------------------------------------- binds --

def test_verify_password(probe, slapd):
    r = probe.run("verify", JDOE_DN, PASSWORD)
    assert r["status"] == "OK" and r["server"] == slapd.uri
    r = probe.run("verify", JDOE_DN, PASSWORD + "x")
    # slapd's 49 carries no AD "data" sub-code
    assert r["status"] == "INVALID_CREDENTIALS" and r["ad_subcode"] == 0
    # the lab refuses disabled accounts with 49, as AD does
    assert probe.run("verify", slapd.dn_of("disabled1"), PASSWORD)["status"] == \
        "INVALID_CREDENTIALS"
    # a DN that does not exist
    r = probe.run("verify", "cn=Nobody,ou=Staff,dc=example,dc=test", PASSWORD)
    assert r["status"] == "INVALID_CREDENTIALS"


def test_empty_password_never_reaches_slapd(probe, slapd):
    accepts_before = log_count(slapd, r" ACCEPT from IP=")
    binds_before = log_count(slapd, r'BIND dn="cn=john doe')
    r = probe.run("verify", JDOE_DN, "")
    assert r["status"] == "INVALID_CREDENTIALS" and r["ad_subcode"] == 0
    assert r["server"] is None
    time.sleep(0.2)
    assert log_count(slapd, r" ACCEPT from IP=") == accepts_before
    assert log_count(slapd, r'BIND dn="cn=john doe') == binds_before


def test_wrong_service_password_is_an_error_tried_once(probe, slapd, tmp_path):
    bad = tmp_path / "bad.pw"
    bad.write_text("not-the-password\n")
    before = log_count(slapd, r"BIND dn=\"cn=svc-postern")
    argv = probe.argv(uris=[slapd.uri, slapd.uri]) + ["-"]
    argv[argv.index("-y") + 1] = str(bad)
    s = Session(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_clean_env()))
    try:
        # a configuration error, not an outage; and neither the second server nor the next
        # lookups bind again, which would only bring the service account nearer to lockout
        for _ in range(3):
            assert s("find", "(sAMAccountName=jdoe)")["status"] == "ERROR"
        # user binds do not need the service account
        assert s("verify", JDOE_DN, PASSWORD)["status"] == "OK"
    finally:
        s.close()
    time.sleep(0.2)
    assert log_count(slapd, r"BIND dn=\"cn=svc-postern") == before + 1


# ---------------------------------------------------------------- failover and timeouts --

def test_dead_first_server_fails_over_to_the_second(probe, slapd):
    dead = "ldap://127.0.0.1:%d" % closed_port()
    r = probe.run("find", "(sAMAccountName=jdoe)", uris=[dead, slapd.uri])
    assert r["status"] == "OK" and r["server"] == slapd.uri and r["n_matched"] == 1
    r = probe.run("verify", JDOE_DN, PASSWORD, uris=[dead, slapd.uri])
    assert r["status"] == "OK" and r["server"] == slapd.uri


def test_all_servers_dead_is_unavailable_quickly(probe):
    dead = ["ldap://127.0.0.1:%d" % closed_port() for _ in range(2)]
    t0 = time.monotonic()
    r = probe.run("find", "(sAMAccountName=jdoe)", uris=dead)
    assert r["status"] == "UNAVAILABLE" and r["server"] is None
    assert probe.run("verify", JDOE_DN, PASSWORD, uris=dead)["status"] == "UNAVAILABLE"
    assert probe.run("naming", uris=dead)["status"] == "UNAVAILABLE"
    assert time.monotonic() - t0 < 3


def test_silent_server_times_out_then_next_one_answers(probe, slapd):
    # accepts TCP (the kernel's backlog) but never answers: only the operation timeout helps
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = "ldap://127.0.0.1:%d" % silent.getsockname()[1]
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[hung], net=1, op=1)
        assert r["status"] == "UNAVAILABLE"
        assert r["ms"] < 2500
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[hung, slapd.uri], net=1, op=1)
        assert r["status"] == "OK" and r["server"] == slapd.uri and r["ms"] < 2500


def test_reconnects_after_connections_are_cut(probe, slapd):
    proxy = Proxy(slapd.port)
    s = probe.session(uris=[proxy.uri, slapd.uri], pool=1)
    try:
        r = s("find", "(sAMAccountName=jdoe)")
        assert r["status"] == "OK" and r["server"] == proxy.uri
        assert s("verify", JDOE_DN, PASSWORD)["server"] == proxy.uri
        # the server drops the pooled connections (idle timeout, restart): transparent
        proxy.cut()
        r = s("find", "(sAMAccountName=jdoe)")
        assert r["status"] == "OK" and r["server"] == proxy.uri
        assert s("verify", JDOE_DN, PASSWORD)["status"] == "OK"
        # the first server goes away for good: the second one takes over
        proxy.close()
        r = s("find", "(sAMAccountName=jdoe)")
        assert r["status"] == "OK" and r["server"] == slapd.uri
        r = s("verify", JDOE_DN, PASSWORD)
        assert r["status"] == "OK" and r["server"] == slapd.uri
    finally:
        proxy.close()
        s.close()


def test_outage_and_recovery_in_one_process(probe, slapd):
    proxy = Proxy(slapd.port)
    s = probe.session(uris=[proxy.uri], pool=1)
    try:
        assert s("find", "(sAMAccountName=jdoe)")["status"] == "OK"
        proxy.close()
        assert s("find", "(sAMAccountName=jdoe)")["status"] == "UNAVAILABLE"
        assert s("verify", JDOE_DN, PASSWORD)["status"] == "UNAVAILABLE"
        proxy.open()
        assert s("find", "(sAMAccountName=jdoe)")["status"] == "OK"
        assert s("verify", JDOE_DN, PASSWORD)["status"] == "OK"
    finally:
        proxy.close()
        s.close()


# ---------------------------------------------------------------------------------- TLS --

def test_wrong_ca_is_refused(probe, tmp_path):
    other_ca, _ = tls_lab.make_ca(str(tmp_path / "other-ca"), name="not the lab CA")
    r = probe.run("find", "(sAMAccountName=jdoe)", ca=other_ca)
    assert r["status"] in ("UNAVAILABLE", "ERROR") and r["accounts"] == []
    assert probe.run("verify", JDOE_DN, PASSWORD, ca=other_ca)["status"] in ("UNAVAILABLE", "ERROR")
    # the same with verification switched off works: the CA file really is what refused it
    assert probe.run("find", "(sAMAccountName=jdoe)", ca=other_ca, verify=False)["status"] == "OK"


def test_certificate_name_is_checked(probe, slapd):
    # the lab certificate names 127.0.0.1 and localhost; 127.0.0.2 is the same host, other name
    try:
        proxy = Proxy(slapd.port, host="127.0.0.2")
    except OSError:
        pytest.skip("cannot listen on 127.0.0.2")
    try:
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[proxy.uri])
        assert r["status"] in ("UNAVAILABLE", "ERROR")
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[proxy.uri], verify=False)
        assert r["status"] == "OK"
    finally:
        proxy.close()


def test_ldap_conf_cannot_weaken_verification(probe, tmp_path):
    other_ca, _ = tls_lab.make_ca(str(tmp_path / "other-ca"), name="not the lab CA")
    conf = tmp_path / "ldap.conf"
    conf.write_text("TLS_REQCERT never\nSIZELIMIT 1\nREFERRALS on\n")
    argv = probe.argv(ca=other_ca) + ["find", "(objectClass=user)", "50"]
    env = dict(_clean_env(), LDAPCONF=str(conf))
    r = json.loads(subprocess.run(argv, capture_output=True, text=True, env=env).stdout)
    assert r["status"] in ("UNAVAILABLE", "ERROR")
    argv = probe.argv() + ["find", "(objectClass=user)", "50"]
    r = json.loads(subprocess.run(argv, capture_output=True, text=True, env=env).stdout)
    assert r["status"] == "OK" and r["n_matched"] > 1


def test_ldaps_uri(probe, slapd, tmp_path):
    proxy = Proxy(slapd.port, tls=(slapd.tls_cert, slapd.tls_key))
    try:
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[proxy.uri])
        assert r["status"] == "OK" and r["server"] == proxy.uri and r["n_matched"] == 1
        assert probe.run("verify", JDOE_DN, PASSWORD, uris=[proxy.uri])["status"] == "OK"
        # ldaps:// is TLS whatever the StartTLS setting says (no StartTLS inside it either)
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[proxy.uri], tls=False)
        assert r["status"] == "OK"
        other_ca, _ = tls_lab.make_ca(str(tmp_path / "other-ca"), name="not the lab CA")
        r = probe.run("find", "(sAMAccountName=jdoe)", uris=[proxy.uri], ca=other_ca)
        assert r["status"] in ("UNAVAILABLE", "ERROR")
    finally:
        proxy.close()


# -------------------------------------------------------------------------- naming etc. --

def test_read_naming(probe, slapd):
    r = probe.run("naming")
    assert r["status"] == "OK"
    assert r["netbios"] == slapd.netbios == "EXAMPLE"
    assert r["dns_domain"] == slapd.domain == "example.test"
    assert r["upn_suffixes"] == [] and r["is_active_directory"] is False


def test_read_naming_from_a_base_below_the_domain(probe):
    r = probe.run("naming", base="ou=Staff,dc=example,dc=test")
    assert r["status"] == "OK" and r["netbios"] == "EXAMPLE"


def test_threads_share_a_small_pool(probe):
    r = probe.run("stress", "8", "25", "(sAMAccountName=jdoe)", JDOE_DN, PASSWORD, pool=2)
    assert r == dict(r, status="OK", ok=200, wrong=0)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.__setitem__(a.index("-C") + 1, "/nonexistent/ca.pem"), "CA file"),
    (lambda a: a.__setitem__(a.index("-y") + 1, "/nonexistent/pw"), "password file"),
    (lambda a: a.__setitem__(a.index("-H") + 1, "ldap://a ldap://b"), "one server"),
    (lambda a: a.__setitem__(a.index("-H") + 1, "http://a"), "scheme"),
    (lambda a: a.__setitem__(a.index("-H") + 1, "ldap://a/dc=example,dc=test"), "one server"),
])
def test_configuration_errors_at_start(probe, change, message):
    argv = probe.argv() + ["naming"]
    change(argv)
    r = json.loads(subprocess.run(argv, capture_output=True, text=True).stdout)
    assert r["status"] == "NEW_FAILED" and message in r["error"], r


def test_empty_service_password_file_is_refused(probe, tmp_path):
    empty = tmp_path / "empty.pw"
    empty.write_text("\n")
    argv = probe.argv() + ["naming"]
    argv[argv.index("-y") + 1] = str(empty)
    r = json.loads(subprocess.run(argv, capture_output=True, text=True).stdout)
    assert r["status"] == "NEW_FAILED" and "empty" in r["error"]


# ------------------------------------------------------------ rule checks and paged scans --

def test_entry_matches_a_filter(probe):
    staff = "cn=MailUsers,ou=Staff,dc=example,dc=test"
    r = probe.run("matches", JDOE_DN, "(memberOf=%s)" % staff)
    assert r["status"] == "OK" and r["matches"] is True
    r = probe.run("matches", JDOE_DN, "(memberOf=cn=Nobody,dc=example,dc=test)")
    assert r["status"] == "OK" and r["matches"] is False
    # an entry that is gone does not match; it is not a directory failure
    r = probe.run("matches", "cn=Gone,ou=Staff,dc=example,dc=test", "(objectClass=*)")
    assert r["status"] == "OK" and r["matches"] is False
    r = probe.run("matches", JDOE_DN, "(broken")
    assert r["status"] == "ERROR"


BULK = 37


@pytest.fixture(scope="module")
def paged_slapd(lab_dir):
    """A slapd that answers at most 5 entries per plain search (like AD's MaxPageSize) and
    holds the sample plus BULK generated accounts."""
    from tests.lab.slapd import Slapd
    with Slapd(lab_dir / "slapd-paged", tls=True, size_limit=5) as ldap:
        records = ["dn: ou=Bulk,dc=example,dc=test\nchangetype: add\nobjectClass: organizationalUnit\n"
                   "ou: Bulk\n"]
        for i in range(BULK):
            records.append(
                "dn: cn=Bulk %03d,ou=Bulk,dc=example,dc=test\nchangetype: add\n"
                "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
                "objectClass: user\ncn: Bulk %03d\nsn: Bulk\nsAMAccountName: bulk%03d\n"
                "mailNickname: bulk%03d\nuserAccountControl: 512\n" % (i, i, i, i))
        ldap.modify("\n".join(records))
        yield ldap


@pytest.fixture(scope="module")
def paged_probe(dirprobe, paged_slapd, tmp_path_factory):
    pw = tmp_path_factory.mktemp("pagedsecret") / "bind.pw"
    pw.write_text(paged_slapd.service_pw + "\n")
    return Probe(dirprobe, paged_slapd, str(pw))


def test_plain_search_hits_the_size_limit(paged_probe):
    # the limit is real: without paging the directory stops at 5
    r = paged_probe.run("find", "(sAMAccountName=bulk*)", "1000")
    assert r["status"] == "OK" and r["n_matched"] == 5


def test_paged_scan_returns_every_account_once(paged_probe, paged_slapd):
    before = log_count(paged_slapd, r"SRCH base=")
    r = paged_probe.run("scan", "(sAMAccountName=bulk*)", "4")
    assert r["status"] == "OK", r
    assert r["n_scanned"] == BULK == len(r["dns"]) == len(set(r["dns"]))
    assert sorted(r["dns"]) == ["cn=Bulk %03d,ou=Bulk,dc=example,dc=test" % i for i in range(BULK)]
    time.sleep(0.2)
    # 37 entries in pages of 4: ten searches on the wire
    assert log_count(paged_slapd, r"SRCH base=") - before == 10


def test_paged_scan_can_stop_early(paged_probe):
    r = paged_probe.run("scan", "(sAMAccountName=bulk*)", "4", "6")
    assert r["status"] == "OK" and r["n_scanned"] == 6 and len(r["dns"]) == 6


def test_paged_scan_of_nothing(paged_probe):
    r = paged_probe.run("scan", "(sAMAccountName=nobody-at-all)", "4")
    assert r["status"] == "OK" and r["n_scanned"] == 0 and r["dns"] == []
