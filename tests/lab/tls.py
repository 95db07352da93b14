# Throwaway test CA and server certificates made with GnuTLS certtool (package gnutls-bin).
"""Both slapd (StartTLS) and postern's own listeners can use these.

ECDSA P-256 keys: generating them takes milliseconds, unlike RSA.
"""
import collections
import os
import shutil

from .daemon import LabError, run

TlsFiles = collections.namedtuple("TlsFiles", "ca_cert ca_key cert key")


def _certtool():
    path = shutil.which("certtool")
    if path is None:
        raise LabError("certtool not found: apt-get install gnutls-bin")
    return path


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def make_ca(directory, name="postern lab CA"):
    """Create ca.key/ca.pem in `directory`; return (ca_cert, ca_key) paths."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "ca.key")
    cert = os.path.join(directory, "ca.pem")
    template = os.path.join(directory, "ca.tmpl")
    _write(template, 'cn = "%s"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' % name)
    tool = _certtool()
    run([tool, "--generate-privkey", "--key-type=ecdsa", "--outfile", key], what="certtool (CA key)")
    run([tool, "--generate-self-signed", "--load-privkey", key, "--template", template,
         "--outfile", cert], what="certtool (CA certificate)")
    os.chmod(key, 0o600)
    return cert, key


def make_server_cert(directory, ca_cert, ca_key, stem="server",
                     dns_names=("localhost", "mail.example.test"), ip_addresses=("127.0.0.1",)):
    """Issue STEM.pem/STEM.key for the given names from the CA; return (cert, key)."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, stem + ".key")
    cert = os.path.join(directory, stem + ".pem")
    template = os.path.join(directory, stem + ".tmpl")
    lines = ['cn = "%s"' % (dns_names[0] if dns_names else ip_addresses[0])]
    lines += ['dns_name = "%s"' % n for n in dns_names]
    lines += ['ip_address = "%s"' % a for a in ip_addresses]
    lines += ["tls_www_server", "signing_key", "expiration_days = 30"]
    _write(template, "\n".join(lines) + "\n")
    tool = _certtool()
    run([tool, "--generate-privkey", "--key-type=ecdsa", "--outfile", key], what="certtool (server key)")
    run([tool, "--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca_cert,
         "--load-ca-privkey", ca_key, "--template", template, "--outfile", cert],
        what="certtool (server certificate)")
    os.chmod(key, 0o600)
    return cert, key


def make_tls_files(directory, dns_names=("localhost", "mail.example.test"),
                   ip_addresses=("127.0.0.1",)):
    """A fresh CA plus one server certificate signed by it."""
    ca_cert, ca_key = make_ca(directory)
    cert, key = make_server_cert(directory, ca_cert, ca_key,
                                 dns_names=dns_names, ip_addresses=ip_addresses)
    return TlsFiles(ca_cert, ca_key, cert, key)
