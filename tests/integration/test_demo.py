# `make demo` keeps its contract: fixed ports over TLS, the ready line, a clean stop.
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.lab import ports, postern
from tests.lab.wire import Wire, client_context

DEMO_PORTS = (10143, 10993, 10110, 10995, 10389)


def test_demo_serves_all_four_listeners_and_stops_cleanly(tmp_path):
    if any(ports.port_in_use("127.0.0.1", p) for p in DEMO_PORTS):
        pytest.skip("a demo is already running on this machine")
    import pathlib
    import tempfile
    base = tempfile.mkdtemp(prefix="postern-demo-")  # posternd (as nobody) reads files here
    os.chmod(base, 0o755)
    demo_dir = pathlib.Path(base) / "demo"
    proc = subprocess.Popen([sys.executable if sys.executable.startswith("/usr/bin") else
                             "/usr/bin/python3", os.path.join(postern.ROOT, "tools", "demo.py"),
                             "--posternd", postern.binary(), "--dir", str(demo_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=str(tmp_path))
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("postern demo ready"), ready + proc.stdout.read()
        for fact in ("127.0.0.1:10143", "127.0.0.1:10993", "127.0.0.1:10110", "127.0.0.1:10995",
                     "jdoe", "asmith (alias anna)", "Administrator", "Demo-Pass-1",
                     "demo/postern.conf", "demo/audit.log", "demo/kdc/krb5.conf", "EXAMPLE.TEST"):
            assert fact in ready, fact
        ctx = client_context(str(demo_dir / "tls" / "ca.pem"))
        with Wire(10993, tls_context=ctx) as w:
            assert w.line().startswith("* OK [CAPABILITY IMAP4rev1")
            reply = w.command("a1", "LOGIN jdoe Demo-Pass-1")
            assert reply[-1].startswith("a1 OK"), reply
            # the demo delivered a welcome message into jdoe's INBOX
            reply = w.command("a2", "SELECT INBOX")
            assert "* 1 EXISTS" in reply and reply[-1].startswith("a2 OK"), reply
            reply = w.command("a3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert any("Welcome to the postern demo" in line for line in reply), reply
        with Wire(10993, tls_context=ctx) as w:
            w.line()
            for tag, login, ok in (("b1", "asmith", False), ("b2", "asmith@example.test", True),
                                   ("b3", "Administrator", False)):
                reply = w.command(tag, 'LOGIN "%s" Demo-Pass-1' % login, timeout=10)
                assert reply[-1].startswith(tag + (" OK" if ok else " NO")), reply
                if ok:
                    w.command("c" + tag, "LOGOUT")
                    break
        with Wire(10995, tls_context=ctx) as w:
            assert w.line().startswith("+OK")
        for port, greeting, upgrade in ((10143, "* OK", "a1 STARTTLS\r\n"),
                                        (10110, "+OK", "STLS\r\n")):
            with Wire(port) as w:
                assert w.line().startswith(greeting)
                w.send(upgrade)
                assert "OK" in w.line()
                w.starttls(ctx)
                assert w.sock.version() in ("TLSv1.2", "TLSv1.3")
        conf = (demo_dir / "postern.conf").read_text()
        assert "LoginType" not in conf  # the default, secure-login
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "postern demo stopped" in out
    for p in DEMO_PORTS:
        assert ports.wait_closed("127.0.0.1", p, timeout=5), p
    # nothing the demo started is left (processes whose command line names its directory)
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", str(demo_dir)], capture_output=True, text=True).stdout
    assert left.strip() == "", left
