"""The directory service account by SASL GSSAPI with a keytab (no password in a file).

A real MIT KDC (the lab's EXAMPLE.TEST) and a slapd of its own that accepts GSSAPI binds for
ldap/<host>; postern's account svc-postern@EXAMPLE.TEST has its keys in a keytab. Over
StartTLS no SASL security layer is negotiated (AD refuses one inside TLS); in clear text
sign and seal are required.
"""
import imaplib
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.lab import daemon, postern
from tests.lab.slapd import Slapd
from tests.integration.test_directory_client import Probe, _clean_env, dirprobe  # noqa: F401
from tests.integration.test_dc_discovery import DC_NAME, dns, in_namespace  # noqa: F401

JDOE_DN = "cn=John Doe,ou=Staff,dc=example,dc=test"


@pytest.fixture(scope="module")
def krb_files(kdc):
    """World-readable copies: posternd uses them after dropping privileges to nobody."""
    d = postern.public_dir("posternd-krb-")
    conf = os.path.join(d, "krb5.conf")
    shutil.copy(kdc.krb5_conf, conf)
    os.chmod(conf, 0o644)
    keytab = kdc.add_keys(["svc-postern"], os.path.join(d, "postern.keytab"))
    os.chmod(keytab, 0o600)   # root only: read at start, before privileges drop
    return {"dir": d, "krb5_conf": conf, "keytab": keytab}


@pytest.fixture(scope="module")
def kslapd(kdc, lab_dir):
    keytab = kdc.add_keys(["ldap/localhost", "ldap/%s" % DC_NAME],
                          str(lab_dir / "slapd-ldap.keytab"))
    with Slapd(lab_dir / "slapd-gssapi", tls=True, kerberos=(kdc.krb5_conf, keytab)) as ldap:
        yield ldap


def probe_env(krb_files, ccache_dir):
    env = _clean_env()
    env["KRB5_CONFIG"] = krb_files["krb5_conf"]
    # the default ccache must not be what the probe uses: point it at an empty place
    env["KRB5CCNAME"] = "FILE:" + os.path.join(ccache_dir, "nothing-here")
    return env


def run_probe(exe, kslapd, krb_files, tmp_path, uri, *command, tls=True, principal=None,
              keytab=None, wrap=None):
    argv = [exe, "-b", kslapd.base_dn, "-n", "2", "-t", "3", "-p", "2", "-H", uri,
            "-K", keytab or krb_files["keytab"]]
    if principal:
        argv += ["-P", principal]
    argv += ["-C", kslapd.ca_cert] if tls else ["-N"]
    argv += list(command)
    if wrap:
        argv = wrap(argv)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          env=probe_env(krb_files, str(tmp_path)))
    assert done.stdout, done.stderr
    r = json.loads(done.stdout.splitlines()[0])
    r["stderr"] = done.stderr
    return r


def gssapi_binds(kslapd):
    time.sleep(0.2)
    with open(kslapd.log_path, errors="replace") as f:
        log = f.read()
    return re.findall(r'BIND authcid="(svc-postern[^"]*)"', log), \
        re.findall(r"BIND dn=\"cn=svc-postern,cn=users,dc=example,dc=test\" mech=GSSAPI "
                   r"bind_ssf=(\d+) ssf=(\d+)", log, re.I)


def test_lookups_over_a_sasl_sealed_connection(dirprobe, kslapd, krb_files, tmp_path):  # noqa: F811
    uri = "ldap://localhost:%d" % kslapd.port
    r = run_probe(dirprobe, kslapd, krb_files, tmp_path, uri, "find", "(sAMAccountName=jdoe)",
                  tls=False)
    assert r["status"] == "OK" and r["n_matched"] == 1, r["stderr"]
    assert r["accounts"][0]["dn"] == JDOE_DN
    _, binds = gssapi_binds(kslapd)
    # in clear text the SASL layer encrypts: bind_ssf 56 or more
    assert binds and int(binds[-1][0]) >= 56, binds


def test_lookups_over_starttls_without_a_sasl_layer(dirprobe, kslapd, krb_files, tmp_path, dns):  # noqa: F811
    uri = "ldap://%s:%d" % (DC_NAME, kslapd.port)
    r = run_probe(dirprobe, kslapd, krb_files, tmp_path, uri, "find", "(sAMAccountName=jdoe)",
                  principal="svc-postern@EXAMPLE.TEST",
                  wrap=lambda argv: in_namespace(dns["resolv"], argv))
    assert r["status"] == "OK" and r["n_matched"] == 1, r["stderr"]
    _, binds = gssapi_binds(kslapd)
    # no SASL layer inside TLS (bind_ssf 0); the connection's ssf is TLS's
    assert binds[-1][0] == "0" and int(binds[-1][1]) >= 128, binds


def test_keytab_problems_are_start_errors(dirprobe, kslapd, krb_files, tmp_path, kdc):  # noqa: F811
    uri = "ldap://localhost:%d" % kslapd.port
    r = run_probe(dirprobe, kslapd, krb_files, tmp_path, uri, "naming", tls=False,
                  keytab=str(tmp_path / "missing.keytab"))
    assert r["status"] == "NEW_FAILED" and "missing.keytab" in r["error"], r
    empty = tmp_path / "empty.keytab"
    empty.write_bytes(b"\x05\x02")   # a keytab header and nothing else
    r = run_probe(dirprobe, kslapd, krb_files, tmp_path, uri, "naming", tls=False,
                  keytab=str(empty))
    assert r["status"] == "NEW_FAILED" and "holds no keys" in r["error"], r
    r = run_probe(dirprobe, kslapd, krb_files, tmp_path, uri, "naming", tls=False,
                  principal="nobody-here@EXAMPLE.TEST")
    assert r["status"] == "NEW_FAILED", r


def test_stale_keys_fail_the_lookup_not_the_process(dirprobe, kslapd, krb_files, tmp_path, kdc):  # noqa: F811
    """Keys the KDC no longer has (the account's password was reset): lookups fail with an
    error naming the keytab; nothing crashes."""
    stale = str(tmp_path / "stale.keytab")
    shutil.copy(krb_files["keytab"], stale)
    kdc.add_keys(["stale-svc"], stale + ".tmp")  # make a principal whose keys we then change
    shutil.copy(stale + ".tmp", stale)
    daemon.run(["kadmin.local", "-r", kdc.realm, "-q", "cpw -randkey stale-svc"], env=kdc.env())
    uri = "ldap://localhost:%d" % kslapd.port
    r = run_probe(dirprobe, kslapd, krb_files, tmp_path, uri, "naming", tls=False, keytab=stale)
    assert r["status"] in ("ERROR", "UNAVAILABLE"), r
    assert "no Kerberos credentials for stale-svc@EXAMPLE.TEST" in r["stderr"], r["stderr"]
    assert "SASL GSSAPI bind with %s" % stale in r["stderr"], r["stderr"]


def test_posternd_with_a_keytab_and_no_password_file(kslapd, krb_files, server_tls, tls_ctx):
    d = postern.public_dir("posternd-gss-")
    block = postern.directory_block(kslapd, d, uris=["ldap://localhost:%d" % kslapd.port],
                                    tls="none")
    block = re.sub(r"\n    BindDN .*\n    BindPasswordFile .*\n",
                   "\n    BindKeytab %s\n" % krb_files["keytab"], block)
    assert "BindDN" not in block and "BindKeytab" in block
    s = postern.Posternd(server_tls, directory=d, global_extra=block)
    s.write_config()
    env = dict(os.environ, KRB5_CONFIG=krb_files["krb5_conf"])
    s.proc = daemon.spawn([postern.binary(), "-f", "-c", s.conf], s.log, env=env)
    try:
        daemon.wait_ready(s.proc, s.ready, "posternd", s.log)
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        m.login("jdoe", "Demo-Pass-1")
        m.logout()
        ev = [e for e in s.audit_events() if e["event"] == "auth"][-1]
        assert ev["result"] == "allow", ev
    finally:
        s.stop()
    # the keytab stayed root-only: posternd (running as nobody) read it before dropping
    assert os.stat(krb_files["keytab"]).st_mode & 0o077 == 0
