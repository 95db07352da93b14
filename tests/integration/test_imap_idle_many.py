# Hundreds of IMAP sessions in IDLE (RFC 2177) on a few mailboxes, as the bench/ idle workload
# holds 10,000: an idling session costs its socket and nothing else (no index connection, lock
# file, maildir directory or inotify instance of its own: store_park, the I/O thread's one
# notifier), a delivery still wakes every one of them, a lost index is rebuilt under them, and
# a session that leaves IDLE fetches and stores as before.
import os
import re
import shutil
import time
import uuid

import pytest

from tests.lab import ad, postern
from tests.lab.wire import Wire

PW = "Demo-Pass-1"
JDOE = str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))
ASMITH = str(uuid.UUID(bytes_le=ad.fixed_guid("asmith")))
N = 300
# (account, login, mailbox, sessions)
PLAN = [(JDOE, "jdoe", "INBOX", 150), (JDOE, "jdoe", "IdleBox", 50),
        (ASMITH, "asmith@example.test", "INBOX", 100)]

# What a process keeps per mailbox, not per session: one spare index connection (database,
# WAL, shared memory, lock file, cur/ new/ tmp/) and the database descriptors SQLite keeps
# from closed connections while another holds a lock (up to one per store worker)
PER_MAILBOX = 7 + 8

MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
           b"Subject: idle %d\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\n\r\nBody.\r\n")


@pytest.fixture(scope="module")
def server(slapd, server_tls):
    d = postern.public_dir("posternd-idlemany-")
    s = postern.Posternd(server_tls, directory=d, mail=True, log_level="info",
                         global_extra="MaxConnections 2000\nMaxConnectionFromSingleIP 1000\n"
                                      + postern.directory_block(slapd, d),
                         imap_extra="MaxConnectionsPerUser 400")
    s.write_config()
    s.start()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


def fds(pid):
    """What the process has open; a descriptor closed between the listing and the readlink
    (another thread's work) is left out."""
    out = []
    for n in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, n)))
        except FileNotFoundError:
            pass
    return sorted(out)


def deliver(server, account, folder, n):
    path = postern.deliver(server, account, MESSAGE % n, folder=folder)
    return path


def login(server, ctx, name):
    w = Wire(server["imaps"], tls_context=ctx, timeout=30)
    assert w.line(timeout=30).startswith("* OK")
    assert w.command("a", "LOGIN %s %s" % (name, PW), timeout=30)[-1].startswith("a OK")
    return w


def start_idle(w, box):
    lines = w.command("s", "SELECT %s" % box, timeout=30)
    assert lines[-1].startswith("s OK"), lines
    exists = [int(l.split()[1]) for l in lines if re.match(r"\* \d+ EXISTS", l)][0]
    w.send("i IDLE\r\n")
    assert w.line(timeout=30).startswith("+ ")
    return exists


def wait_exists(sessions, want, timeout):
    """Every session reads `* want EXISTS`; returns the seconds until the last did."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    for w, _ in sessions:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "a session did not see * %d EXISTS" % want
            line = w.line(timeout=left)
            assert not line.startswith("* BYE"), line
            if line == "* %d EXISTS" % want:
                break
    return time.monotonic() - t0


def test_idle_sessions_hold_no_descriptors_and_all_wake(server, tls_ctx):
    pid = server.pid
    boxes = {}
    setup = login(server, tls_ctx, "jdoe")
    assert setup.command("c", "CREATE IdleBox")[-1].startswith("c OK")
    setup.close()
    # one session first: the I/O threads' notifiers and the spare connections exist after it
    warm = login(server, tls_ctx, "jdoe")
    start_idle(warm, "INBOX")
    time.sleep(0.5)
    before = fds(pid)
    groups = []
    for account, name, box, count in PLAN:
        group = []
        for _ in range(count):
            w = login(server, tls_ctx, name)
            boxes[(account, box)] = start_idle(w, box)
            group.append((w, box))
        groups.append((account, box, group))
    time.sleep(1.0)  # the first syncs have parked
    during = fds(pid)
    added = len(during) - len(before)
    # one socket each; the rest is shared: per mailbox, and a notifier per I/O thread
    assert added <= N + 3 * PER_MAILBOX + 4, (added, [f for f in during if f not in before][:40])
    assert sum("inotify" in f for f in during) <= os.cpu_count() + 1
    assert not any("postern.lock" in f for f in during if during.count(f) > 4)

    # a delivery into each mailbox wakes every session on it
    n = 1
    for account, box, group in groups:
        deliver(server, account, box, n)
        n += 1
    for account, box, group in groups:
        boxes[(account, box)] += 1
        took = wait_exists(group, boxes[(account, box)], timeout=30)
        print("%s/%s: %d sessions woken in %.2f s" % (account[:8], box, len(group), took))
    time.sleep(1.0)
    now = fds(pid)
    assert len(now) - len(before) <= N + 3 * PER_MAILBOX + 4, sorted(
        set(re.sub(r".*/mail/", "", f) for f in now if "socket" not in f))

    # the index of jdoe's INBOX is lost while its sessions idle: the next delivery rebuilds it
    # and every session goes on (no BYE, the same message numbers)
    account, box, group = groups[0]
    db = os.path.join(postern.mailbox_dir(server, account, box), "postern.db")
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass
    deliver(server, account, box, n)
    boxes[(account, box)] += 1
    wait_exists(group, boxes[(account, box)], timeout=30)
    assert os.path.exists(db)

    # a session leaves IDLE, fetches and stores; the others on the mailbox see the flag
    w, _ = group[0]
    w.send("DONE\r\n")
    assert w.until_tagged("i", timeout=30)[-1] == "i OK IDLE terminated"
    count = boxes[(account, box)]
    lines = w.command("f", "FETCH %d (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])" % count,
                      timeout=30)
    assert lines[-1].startswith("f OK"), lines
    assert any("Subject: idle %d" % n in l for l in lines), lines
    lines = w.command("t", "STORE %d +FLAGS (\\Flagged)" % count, timeout=30)
    assert lines[-1].startswith("t OK"), lines
    assert any("\\Flagged" in l for l in lines), lines
    for other, _ in group[1:20]:
        deadline = time.monotonic() + 30
        while True:
            line = other.line(timeout=max(0.1, deadline - time.monotonic()))
            if re.match(r"\* %d FETCH \(UID \d+ FLAGS \(.*\\Flagged.*\)\)" % count, line):
                break
    # and IDLE again
    w.send("j IDLE\r\n")
    assert w.line(timeout=30).startswith("+ ")
    w.send("DONE\r\n")
    assert w.until_tagged("j", timeout=30)[-1] == "j OK IDLE terminated"

    for _, _, group in groups:
        for w, _ in group:
            w.close()
    warm.close()
    deadline = time.monotonic() + 30
    while len(fds(pid)) > len(before) + 3 * PER_MAILBOX and time.monotonic() < deadline:
        time.sleep(0.2)
    after = fds(pid)
    print("descriptors: %d before the sessions, %d during, %d after; new after: %s"
          % (len(before), len(during), len(after),
             [re.sub(r".*/mail/", "", f) for f in after if f not in before]))
    assert len(after) <= len(before) + 3 * PER_MAILBOX, after
