# Shared pytest fixtures for postern's integration tests (directory lab now; server fixtures go below it).
import os
import shutil
import sys

import pytest

# Make `tests.lab` importable without installing anything (run from any cwd).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.lab import Kdc, Slapd  # noqa: E402


# ============================================================================
# Directory lab: one real slapd and one real MIT KDC per test session, in a
# pytest tmp dir, on 127.0.0.1 with free ports. Logic lives in tests/lab/.
# ============================================================================

@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory):
    """Session directory holding slapd/ and kdc/ (logs stay there after the run)."""
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def slapd(lab_dir):
    """Started Slapd with schema/sample.ldif loaded.

    StartTLS is on (test CA in slapd.ca_cert) when certtool (gnutls-bin) is
    installed; otherwise slapd.ca_cert is None and TLS tests skip.
    """
    with Slapd(lab_dir / "slapd", tls=shutil.which("certtool") is not None) as ldap:
        yield ldap


@pytest.fixture(scope="session")
def kdc(lab_dir):
    """Started Kdc for EXAMPLE.TEST with imap/ and pop/ service keys in kdc.keytab."""
    with Kdc(lab_dir / "kdc") as realm:
        yield realm

# ============================================================================
# End of directory lab fixtures.
# ============================================================================


# ============================================================================
# postern server fixtures: a test CA, and posternd processes built from
# tests/lab/postern.py. The default server is shared by a module; tests that
# need their own configuration start one with `make_server`.
# ============================================================================

from tests.lab import postern as postern_lab  # noqa: E402
from tests.lab import tls as tls_lab  # noqa: E402
from tests.lab.wire import client_context  # noqa: E402


@pytest.fixture(scope="session")
def test_ca():
    """A throwaway CA (world-readable directory: posternd reloads as nobody)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="postern-ca-")
    os.chmod(d, 0o755)
    ca_cert, ca_key = tls_lab.make_ca(d)
    return {"dir": d, "cert": ca_cert, "key": ca_key}


def _server_tls(test_ca, stem):
    import collections
    cert, key = tls_lab.make_server_cert(test_ca["dir"], test_ca["cert"], test_ca["key"], stem=stem)
    return tls_lab.TlsFiles(test_ca["cert"], test_ca["key"], cert, key)


@pytest.fixture(scope="session")
def server_tls(test_ca):
    return _server_tls(test_ca, "posternd")


@pytest.fixture
def make_server(server_tls, request):
    """Factory: make_server(**Posternd kwargs) -> started Posternd, stopped after the test."""
    started = []

    def factory(**kwargs):
        kwargs.setdefault("tls_files", server_tls)
        s = postern_lab.Posternd(**kwargs).start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def server(server_tls):
    """The default server: the four standard listeners, short timeouts, secure-login."""
    s = postern_lab.Posternd(server_tls,
                             imap_extra="MaxCommandSize 4096\nMaxLiteralSize 8192\n"
                                        "PreAuthenticatedConnectionTimeout 30",
                             pop3_extra="PreAuthenticatedConnectionTimeout 30")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tls_ctx(test_ca):
    return client_context(test_ca["cert"])


# ============================================================================
# Samba AD DC lab: one real Samba Active Directory domain controller per test
# session (realm CORP.EXAMPLE.TEST, NetBIOS CORP), provisioned in a pytest tmp
# dir and bound to one loopback address (a free one of 127.0.0.12-40).
# Provisioning takes ~10 s, hence session scope. Logic lives in tests/lab/samba.py.
# ============================================================================

@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory):
    """Started SambaDC with postern's test accounts (see tests/lab/samba.py); samba.log
    (with every authentication) stays in the session's tmp dir after the run."""
    from tests.lab import samba as samba_lab
    dc = samba_lab.SambaDC(tmp_path_factory.mktemp("samba-dc"), host=samba_lab.free_address())
    with dc:
        yield dc

# ============================================================================
# End of Samba AD DC lab fixtures.
# ============================================================================
