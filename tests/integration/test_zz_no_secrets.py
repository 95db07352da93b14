"""Runs last (file order): after the whole suite, no log or audit file of any posternd the
session started holds a password or key the tests used -- not the users' passwords, not the
directory service account's, not the wrong passwords tried, not the non-ASCII one."""
import glob
import os

from tests.lab import postern, samba, slapd

SECRETS = {
    slapd.PASSWORD, samba.PASSWORD, samba.ADMIN_PASSWORD, samba.SERVICE_PASSWORD,
    "Gr\u00fc\u00dfe-Pass-1",       # the non-ASCII password of test_auth_ad
    "Rotated-Service-Pass-7",      # the rotated service password of test_auth_ldap
    "wrong-password",
}


def test_no_secret_in_any_log_or_audit_file():
    files = set()
    for s in postern.ALL_SERVERS:
        files.update(p for p in (s.log, s.audit) if os.path.exists(p))
        files.update(glob.glob(os.path.join(s.dir, "*.log")))
    assert files or not postern.ALL_SERVERS
    found = []
    for path in sorted(files):
        with open(path, "rb") as f:
            data = f.read()
        for secret in SECRETS:
            for form in (secret.encode("utf-8"), secret.encode("latin-1", "ignore")):
                if form and form in data:
                    found.append((path, secret))
    assert not found, found
    print("checked %d log and audit files of %d servers" % (len(files), len(postern.ALL_SERVERS)))
