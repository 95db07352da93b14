# NTLMv2 verified by postern itself from the NT hashes of the lab slapd (sambaNTPassword).
"""No domain controller: with `NTHashAttribute sambaNTPassword` postern sends its own CHALLENGE
(random server challenge, target information with a time stamp), reads the resolved
account's NT hash as the service account only after resolution and policy, and checks the
NTLMv2 proof and the MIC. The lab slapd (schema/sample.ldif) holds the hash of Demo-Pass-1
for its users; clients are python-ntlm-auth (NTLMv2 with a MIC) and curl.
"""
import base64
import imaplib
import subprocess
import time

import pytest

from tests.lab import postern, sso
from tests.lab.wire import Wire

PW = "Demo-Pass-1"


@pytest.fixture(scope="module")
def server(slapd, server_tls):
    d = postern.public_dir("posternd-ntlm-local-")
    s = postern.Posternd(server_tls, directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 0s") + "ntlm {\n    NTHashAttribute sambaNTPassword\n}\n")
    s.write_config()
    s.start()
    yield s
    s.stop()


def last_auth(server, login=None):
    time.sleep(0.05)
    events = [e for e in server.audit_events() if e["event"] == "auth" and
              (login is None or e["login"] == login)]
    assert events, "no audit event for %r" % login
    return events[-1]


def login(server, tls_ctx, user, password=PW, domain="EXAMPLE", tamper=None):
    respond = sso.ntlm_client(user, password, domain)
    step = [0]

    def cb(challenge):
        out = respond(challenge)
        step[0] += 1
        return tamper(out) if tamper and step[0] == 2 else out
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=tls_ctx)
    try:
        m.authenticate("NTLM", cb)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        m.logout()


def test_ntlmv2_from_the_nt_hash(server, tls_ctx):
    assert login(server, tls_ctx, "jdoe")
    ev = last_auth(server, "EXAMPLE\\jdoe")
    assert ev["result"] == "allow" and ev["mechanism"] == "NTLM" and ev["account"] == "jdoe", ev


def test_wrong_password_and_a_changed_message(server, tls_ctx):
    assert not login(server, tls_ctx, "jdoe", "Wrong-Pass-1")
    assert last_auth(server, "EXAMPLE\\jdoe")["reason"] == "invalid_credentials"

    def flip_mic(msg):   # the MIC (offset 72) no longer matches the three messages
        return msg[:72] + bytes([msg[72] ^ 1]) + msg[73:]
    assert not login(server, tls_ctx, "jdoe", tamper=flip_mic)
    assert last_auth(server, "EXAMPLE\\jdoe")["reason"] == "ntlm_mic_mismatch"


def test_blocked_accounts_are_not_checked(server, tls_ctx):
    assert not login(server, tls_ctx, "Administrator")
    assert last_auth(server, "EXAMPLE\\Administrator")["reason"] == "builtin_administrator"


def test_the_challenge_is_ours_and_fresh(server, tls_ctx):
    challenges = set()
    for _ in range(3):
        with Wire(server["imaps"], tls_context=tls_ctx) as w:
            w.line()
            neg = sso.ntlm_client("jdoe", PW, "EXAMPLE")(b"")
            w.send("a AUTHENTICATE NTLM %s\r\n" % base64.b64encode(neg).decode())
            chal = base64.b64decode(w.line()[2:])
            assert chal[:12] == b"NTLMSSP\0\2\0\0\0"
            challenges.add(chal[24:32])
    assert len(challenges) == 3


def test_curl(server, test_ca):
    done = subprocess.run(["curl", "-sS", "--max-time", "10", "--login-options", "AUTH=NTLM",
                           "-u", "EXAMPLE\\jdoe:" + PW, "--cacert", test_ca["cert"], "-X", "NOOP",
                           "imaps://localhost:%d/" % server["imaps"]],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert last_auth(server, "EXAMPLE\\jdoe")["result"] == "allow"
