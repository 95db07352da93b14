"""Directory faults: slapd killed during a login storm, and a slow directory.

- Killed mid-storm: every refusal is [UNAVAILABLE] (audit directory_unavailable), sessions
  already logged in keep working, nothing crashes, file descriptors do not grow, and logins
  succeed within about a second of the directory answering again.
- Slow directory (a delaying TCP proxy in front of slapd): the workers wait, the I/O threads
  do not -- other sessions' commands keep answering at once.
"""
import imaplib
import os
import select
import socket
import threading
import time

import pytest

from tests.lab import ports, postern

PW = "Demo-Pass-1"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def login(server, ctx, user="jdoe", password=PW):
    """(ok, text) of one IMAP LOGIN over implicit TLS."""
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=30)
    try:
        m.login(user, password)
        return True, "OK"
    except imaplib.IMAP4.error as e:
        return False, str(e)
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def test_directory_killed_during_a_login_storm(server_tls, tls_ctx, make_server,
                                               tmp_path_factory):
    from tests.lab import Slapd
    own = Slapd(tmp_path_factory.mktemp("slapd-storm"), tls=True)
    own.start()
    try:
        d = postern.public_dir("posternd-storm-")
        s = make_server(directory=d, global_extra=postern.directory_block(own, d))
        # a session logged in before the outage
        keeper = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        keeper.login("jdoe", PW)
        assert login(s, tls_ctx)[0]
        fds_before = fd_count(s.pid)

        results, stop = [], threading.Event()

        def storm():
            while not stop.is_set():
                results.append(login(s, tls_ctx))

        threads = [threading.Thread(target=storm) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(own.pid, 9)          # no goodbye: connections just die
        own._proc.wait()
        kill_index = len(results)
        time.sleep(3.0)
        # the logged-in session still answers while the directory is gone
        assert keeper.noop()[0] == "OK"
        # back on the same port with the same data, as a crashed server restarts
        own._proc = None
        own.start(fresh=False)
        back = time.monotonic()
        recovered_after = None
        while time.monotonic() - back < 10:
            if login(s, tls_ctx)[0]:
                recovered_after = time.monotonic() - back
                break
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert recovered_after is not None and recovered_after < 1.5, recovered_after
        during = results[kill_index:]
        refused = [text for ok, text in during if not ok]
        assert refused, "no login was refused during the outage"
        assert all("[UNAVAILABLE]" in text for text in refused), set(refused)
        reasons = {e["reason"] for e in s.audit_events()
                   if e["event"] == "auth" and e["result"] == "deny"}
        assert reasons <= {"directory_unavailable"}, reasons
        assert keeper.noop()[0] == "OK"
        keeper.logout()
        time.sleep(0.5)
        # no descriptor leak: pooled LDAP connections were replaced, not accumulated (the
        # two pools hold at most 2 x PoolSize = 8 connections, plus closing sessions)
        deadline = time.monotonic() + 5
        while fd_count(s.pid) > fds_before + 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fd_count(s.pid) <= fds_before + 8, (fds_before, fd_count(s.pid))
        assert s.proc.poll() is None
    finally:
        own.stop()


class DelayProxy:
    """TCP proxy that holds every byte from the server for `delay` seconds (toggled)."""

    def __init__(self, target_port, delay):
        self.delay = delay
        self.on = False
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True),
                             daemon=True).start()

    def _pump(self, src, dst, from_server):
        try:
            while True:
                r, _, _ = select.select([src], [], [], 1.0)
                if self.closed:
                    break
                if not r:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if from_server and self.on:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()


def test_slow_directory_never_holds_the_io_threads(slapd, server_tls, tls_ctx, make_server):
    proxy = DelayProxy(slapd.port, delay=2.5)
    try:
        d = postern.public_dir("posternd-slow-")
        s = make_server(directory=d, global_extra=postern.directory_block(
            slapd, d, uris=["ldap://127.0.0.1:%d" % proxy.port], tls="none",
            extra="    OperationTimeout 10s"))
        keeper = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        keeper.login("jdoe", PW)
        proxy.on = True
        # more slow logins than there are workers (8) and I/O threads (2)
        slow = [threading.Thread(target=login, args=(s, tls_ctx)) for _ in range(12)]
        for t in slow:
            t.start()
        time.sleep(0.3)
        worst = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            assert keeper.noop()[0] == "OK"                 # a logged-in session
            c = imaplib.IMAP4("127.0.0.1", s["imap"])      # a new connection's greeting
            c.capability()
            c.logout()
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.05)
        proxy.on = False
        for t in slow:
            t.join(timeout=60)
        # waiting LDAP calls sit in workers: the event loops answer in milliseconds
        assert worst < 0.5, "an I/O thread waited: %.2f s" % worst
        keeper.logout()
    finally:
        proxy.close()
