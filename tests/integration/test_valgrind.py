"""posternd under valgrind memcheck: one representative session of each protocol (IMAP
login + mailbox commands over TLS, POP3 login + STAT/RETR/QUIT), then a clean stop -- no
invalid access, no definitely or indirectly lost memory.

Slow under valgrind (a few seconds per TLS handshake), so the sessions are short."""
import imaplib
import os
import poplib
import re
import shutil
import signal
import uuid

import pytest

from tests.lab import ad, daemon, postern

PW = "Demo-Pass-1"
pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind missing")


def test_one_session_of_each_protocol_leaks_nothing(slapd, server_tls, tls_ctx):
    if "SANITIZE" in os.environ.get("POSTERND", "") or "/san/" in postern.binary():
        pytest.skip("valgrind does not run AddressSanitizer builds")
    d = postern.public_dir("posternd-valgrind-")
    s = postern.Posternd(server_tls, directory=d, mail=True,
                         global_extra="IOThreads 1\nWorkerThreads 2\nStoreThreads 2\n"
                                      + postern.directory_block(slapd, d))
    s.write_config()
    key = str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))
    vlog = os.path.join(d, "valgrind.log")
    argv = ["valgrind", "--tool=memcheck", "--vgdb=no", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--track-fds=no", "--log-file=" + vlog,
            "--error-exitcode=99", "--trace-children=no", postern.binary(), "-f", "-c", s.conf]
    s.proc = daemon.spawn(argv, s.log)
    try:
        daemon.wait_ready(s.proc, s.ready, "posternd under valgrind", s.log, timeout=120)
        postern.deliver(s, key, "From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n")
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx, timeout=120)
        m.login("jdoe", PW)
        m.capability()
        m.noop()
        m.logout()
        p = poplib.POP3_SSL("127.0.0.1", s["pop3s"], context=tls_ctx, timeout=120)
        p.user("jdoe")
        p.pass_(PW)
        p.stat()
        p.retr(1)
        p.quit()
        # a refused login and a pre-auth session cut short, too
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx, timeout=120)
        with pytest.raises(imaplib.IMAP4.error):
            m.login("jdoe", "wrong")
        m.shutdown()
    finally:
        os.kill(s.proc.pid, signal.SIGTERM)
        status = s.proc.wait(timeout=120)
    with open(vlog) as f:
        report = f.read()
    assert status == 0, report[-4000:]
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    assert summary and summary.group(1) == "0", report[-6000:]
    for kind in ("definitely lost", "indirectly lost"):
        m = re.search(kind + r": ([\d,]+) bytes", report)
        assert m is None or m.group(1) == "0", report[-6000:]
