"""posternctl check-config and GSSAPI logins: the kerberos block's keytab must hold keys for
imap/<host> and pop/<host> of every HostName, and every such SPN must be registered on exactly
one account of the directory (checked against the Samba AD DC after a real `adcli join`)."""
import json
import os
import subprocess

from tests.integration.test_posternctl_audit import Conf, ctl, make_keytab
from tests.lab import postern
from tests.lab.samba import SambaDC


def make_service_keytab(path, principals, mode=0o600):
    if os.path.exists(path):
        os.unlink(path)
    script = "".join("addent -password -p %s -k 1 -e aes256-cts-hmac-sha1-96\nsecret\n" % p
                     for p in principals) + "wkt %s\nq\n" % path
    subprocess.run(["ktutil"], input=script, capture_output=True, text=True, check=True,
                   timeout=30)
    os.chmod(path, mode)
    return path


def check(conf):
    status, out, err = ctl(conf, "check-config", "--format", "json")
    assert status in (0, 1), err
    found = json.loads(out)["findings"]
    for x in found:
        x["stderr"] = err
    return status, found


def with_kerberos(d, keytab, hosts, name="postern.conf", dc=None):
    conf = Conf(d, no_directory=dc is not None).write(name)
    with open(conf, "a") as f:
        if dc:
            # after Conf, which writes an ldap.secret of its own into d
            f.write(postern.directory_block(dc, d))
        f.write("kerberos {\n    Keytab %s\n%s}\n"
                % (keytab, "".join("    HostName %s\n" % h for h in hosts)))
    return conf


def test_keytab_keys_for_every_host_name():
    d = postern.public_dir("posternctl-krb-")
    keytab = make_service_keytab(os.path.join(d, "service.keytab"), [
        "imap/mail.example.test@EXAMPLE.TEST", "pop/mail.example.test@EXAMPLE.TEST"])
    status, found = check(with_kerberos(d, keytab, ["mail.example.test"], "ok.conf"))
    ids = {x["id"] for x in found}
    assert not ids & {"KEYTAB_NO_KEY_FOR_SPN", "KEYTAB_MISSING", "KEYTAB_EMPTY"}, found
    status, found = check(with_kerberos(d, keytab, ["mail.example.test", "other.example.test"],
                                        "other.conf"))
    missing = sorted(x["message"] for x in found if x["id"] == "KEYTAB_NO_KEY_FOR_SPN")
    assert status == 1 and len(missing) == 2, found
    assert "imap/other.example.test" in missing[0] and "pop/other.example.test" in missing[1]
    # no HostName: any imap/ and pop/ key will do, but there must be one of each
    only_imap = make_service_keytab(os.path.join(d, "imap-only.keytab"),
                                    ["imap/mail.example.test@EXAMPLE.TEST"])
    status, found = check(with_kerberos(d, only_imap, [], "anyhost.conf"))
    assert [x["message"] for x in found if x["id"] == "KEYTAB_NO_KEY_FOR_SPN"] and all(
        "pop/" in x["message"] for x in found if x["id"] == "KEYTAB_NO_KEY_FOR_SPN"), found
    open_keytab = make_keytab(os.path.join(d, "open.keytab"), "imap/x@EXAMPLE.TEST", 0o644)
    status, found = check(with_kerberos(d, open_keytab, [], "open.conf"))
    assert "KEYTAB_ACCESSIBLE_BY_OTHERS" in {x["id"] for x in found}


def test_spns_registered_in_active_directory(samba_dc: SambaDC, server_tls):
    d = postern.public_dir("posternctl-spn-")
    keytab = samba_dc.join(os.path.join(d, "join.keytab"))
    # the joined host's SPNs exist, once: no SPN finding
    status, found = check(with_kerberos(d, keytab, [samba_dc.MAIL_HOST], "joined.conf", samba_dc))
    spn = [x for x in found if x["id"].startswith("SPN_") or x["id"] == "KEYTAB_NO_KEY_FOR_SPN"]
    assert not spn, [(x["id"], x["message"], x["stderr"][-800:]) for x in spn]
    # a front-end name nobody registered: the KDC would issue no ticket for it
    status, found = check(with_kerberos(d, keytab, [samba_dc.MAIL_HOST, "mx2.corp.example.test"],
                                        "unregistered.conf", samba_dc))
    unregistered = sorted(x["message"] for x in found if x["id"] == "SPN_NOT_REGISTERED")
    assert status == 1 and len(unregistered) == 2, found
    assert "imap/mx2.corp.example.test" in unregistered[0]


def test_clock_skew_with_the_domain_controller(samba_dc: SambaDC):
    """AD's rootDSE says what time the DC has; Kerberos refuses beyond 5 minutes."""
    import shutil
    import pytest
    if shutil.which("faketime") is None:
        pytest.skip("faketime missing")
    d = postern.public_dir("posternctl-clock-")
    keytab = samba_dc.join(os.path.join(d, "join.keytab"))
    conf = with_kerberos(d, keytab, [samba_dc.MAIL_HOST], "clock.conf", samba_dc)
    status, found = check(conf)
    assert not {x["id"] for x in found} & {"CLOCK_SKEW", "CLOCK_DRIFT"}, found
    for offset, finding, severity in (("+10m", "CLOCK_SKEW", "fail"),
                                      ("+2m", "CLOCK_DRIFT", "warn")):  # not behind: the
        # DC's certificate was issued minutes ago and would not be valid yet
        # libfaketime is preloaded ahead of an ASan build's runtime (make check SANITIZE=1),
        # which ASan refuses unless told not to check the order
        env = dict(os.environ, ASAN_OPTIONS=":".join(
            x for x in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if x))
        r = subprocess.run(["faketime", "-f", offset, os.environ.get("POSTERNCTL", "")
                            or os.path.join(postern.ROOT, "build", "posternctl"),
                            "-c", conf, "check-config", "--format", "json"],
                           capture_output=True, text=True, timeout=120, env=env)
        doc = json.loads(r.stdout)
        hits = [x for x in doc["findings"] if x["id"] == finding]
        assert len(hits) == 1 and hits[0]["severity"] == severity, (r.stderr[-1500:], doc["findings"])
