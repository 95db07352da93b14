# IMAP sessions that see each other and the outside world: IDLE woken by a delivery into new/
# (RFC 2177), two sessions on one mailbox (untagged EXISTS, EXPUNGE and FETCH FLAGS, never an
# EXPUNGE inside a FETCH), the MIME answers against src/mime's Dovecot-checked probe, a 50 MB
# APPEND and FETCH streamed through a small posternd, a real sync client (mbsync) pulling a
# mailbox, and kill -9 of posternd in the middle of APPEND and EXPUNGE loops.
import hashlib
import imaplib
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from tests.lab import ad, postern
from tests.lab.wire import Wire

PW = "Demo-Pass-1"
JDOE = str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))

SIMPLE = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
          b"Subject: Hello there\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\n\r\nBody.\r\n")


def server_config(slapd, prefix):
    d = postern.public_dir(prefix)
    return dict(directory=d, mail=True, global_extra=postern.directory_block(slapd, d))


@pytest.fixture(scope="module")
def mail_server(slapd, server_tls):
    s = postern.Posternd(server_tls, **server_config(slapd, "posternd-imapsync-"))
    s.write_config()
    s.start()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


_delivered = [0]


def deliver(server, message, folder="INBOX"):
    """Like postern.deliver() (tmp/, then new/), with a distinct name and an increasing mtime
    per message, so that the store gives UIDs in delivery order, and both set before the
    message shows up in new/ (an IDLE session takes it at once)."""
    _delivered[0] += 1
    maildir = postern.mailbox_dir(server, JDOE, folder)
    first = postern.deliver(server, JDOE, b"", folder=folder) if not os.path.isdir(
        os.path.join(maildir, "tmp")) else None
    if first:
        os.unlink(first)  # made the folder's directories with the right owner
    name = "%d.M%dP%d.postern-test.%d" % (time.time(), time.monotonic_ns() % 1000000,
                                          os.getpid(), _delivered[0])
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(message)
    t = time.time() - 100000 + _delivered[0]
    os.utime(tmp, (t, t))
    if server.user:
        import pwd
        pw = pwd.getpwnam(server.user)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    final = os.path.join(maildir, "new", name)
    os.rename(tmp, final)
    return final


def connect(server, ctx):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=60)
    assert m.login("jdoe", PW)[0] == "OK"
    return m


def wire(server, ctx):
    w = Wire(server["imaps"], tls_context=ctx, timeout=30)
    assert w.line().startswith("* OK")
    assert w.command("a0", "LOGIN jdoe %s" % PW)[-1].startswith("a0 OK")
    return w


def fresh_box(m):
    name = "S%d" % time.monotonic_ns()
    assert m.create(name)[0] == "OK"
    return name


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


# ---- IDLE ----

def test_idle_reports_delivery_flags_and_expunge(mail_server, tls_ctx):
    m = connect(mail_server, tls_ctx)
    box = fresh_box(m)
    w = wire(mail_server, tls_ctx)
    assert w.command("s", "SELECT %s" % box)[-1].startswith("s OK")
    w.send("i IDLE\r\n")
    assert w.line().startswith("+ ")
    time.sleep(0.3)
    started = time.monotonic()
    deliver(mail_server, SIMPLE, folder=box)
    assert w.line(timeout=1.0) == "* 1 EXISTS"  # RFC 2177: at once, not at the next poll
    elapsed = time.monotonic() - started
    assert w.line(timeout=1.0) == "* 1 RECENT"
    assert elapsed < 1.0, elapsed
    # another session's STORE and EXPUNGE arrive too
    m.select(box)
    m.store("1", "+FLAGS", "(\\Flagged)")
    line = w.line(timeout=2.0)
    assert re.match(r"\* 1 FETCH \(UID 1 FLAGS \(\\Flagged( \\Recent)?\)\)", line), line
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    lines = []
    while not lines or lines[-1] != "* 1 EXPUNGE":
        lines.append(w.line(timeout=2.0))
    # DONE with the next command in the same packet: both answered, in order
    w.send("DONE\r\nn0 NOOP\r\n")
    assert w.line() == "i OK IDLE terminated"
    assert w.line() == "n0 OK NOOP completed"
    # IDLE in the authenticated state waits for DONE too; anything else is BAD
    assert w.command("c", "CLOSE")[-1].startswith("c OK")
    w.send("j IDLE\r\n")
    assert w.line().startswith("+ ")
    w.send("NOPE\r\n")
    assert w.line().startswith("j BAD")
    assert w.command("n", "NOOP")[-1] == "n OK NOOP completed"
    m.logout()


# ---- two sessions on one mailbox ----

def test_two_sessions_see_each_other(mail_server, tls_ctx):
    b = connect(mail_server, tls_ctx)
    box = fresh_box(b)
    a = wire(mail_server, tls_ctx)
    assert a.command("s", "SELECT %s" % box)[-1].startswith("s OK")
    b.select(box)
    for i in range(3):
        b.append(box, None, None, SIMPLE.replace(b"Body.", b"Body %d." % i))
    lines = a.command("n1", "NOOP")
    assert "* 3 EXISTS" in lines, lines
    assert "* 0 RECENT" in lines  # \Recent went to the session that saw them first (B)
    b.store("2", "+FLAGS", "(\\Seen $Done)")
    lines = a.command("n2", "NOOP")
    assert any(re.match(r"\* 2 FETCH \(UID \d+ FLAGS \(\\Seen \$Done\)\)", l)
               for l in lines), lines
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    # RFC 3501 §7.4.1: no EXPUNGE while answering FETCH; the message still has number 1
    lines = a.command("f", "FETCH 1:* (FLAGS)")
    assert not any("EXPUNGE" in l for l in lines), lines
    assert {l.split()[1] for l in lines if l.startswith("* ")} == {"1", "2", "3"}, lines
    lines = a.command("f2", "FETCH 1 (BODY.PEEK[])", timeout=10)
    assert lines[-1].startswith("f2 OK [EXPUNGEISSUED]"), lines
    lines = a.command("n3", "NOOP")
    assert lines[0] == "* 1 EXPUNGE", lines
    lines = a.command("f3", "FETCH 1:* (UID)")
    assert sum(1 for l in lines if l.startswith("* ")) == 2, lines
    # UID commands may get EXPUNGE at once
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    lines = a.command("u", "UID FETCH 1:* (FLAGS)")
    assert "* 1 EXPUNGE" in lines, lines
    b.logout()


# ---- MIME structure: what posternd sends is what the probe checked against Dovecot gives ----

from test_mime_reference import (DATA, SAMPLES, item_value, mimeprobe,  # noqa: E402
                                 normalised, probe, raw_fetch, section_bytes)

assert mimeprobe  # a fixture, used by name
# A subset of the reference test's sections (that test covers src/mime itself; here it is the
# way posternd maps FETCH items onto it): every kind of section text, nested parts, partials.
SECTIONS = ["HEADER", "TEXT", "1", "1.MIME", "1.1", "2", "2.HEADER", "2.1.MIME",
            "HEADER.FIELDS (FROM SUBJECT DATE X-NONE)", "HEADER.FIELDS.NOT (FROM RECEIVED TO)",
            "1.HEADER.FIELDS.NOT (DATE)"]
PARTIALS = [("", 100, 7), ("TEXT", 7, 30), ("1", 3, 5), ("HEADER", 5000, 10)]
SECTION_SAMPLES = {"alternative.eml", "nested.eml", "mixed_attachment.eml",
                   "rfc822_attachment.eml", "top_rfc822.eml", "digest_cut_header.eml",
                   "plain_lf.eml", "nul_bytes.eml", "broken_boundary.eml"}


def test_index_wal_stays_bounded(mail_server, tls_ctx):
    """Flag changes go to the index's write-ahead log; it is checkpointed every 200 pages, so
    that the next session's first open (which reads the whole WAL) stays cheap: after 1,500
    STOREs (about 4 MB of WAL at SQLite's default) it is under 1 MB."""
    m = connect(mail_server, tls_ctx)
    box = fresh_box(m)
    for i in range(40):
        assert m.append(box, None, None, SIMPLE.replace(b"Hello", b"Hello %d" % i))[0] == "OK"
    m.select(box)
    for r in range(1500):
        typ, _ = m.store(str(1 + r % 40), "+FLAGS.SILENT" if r // 40 % 2 else "-FLAGS.SILENT",
                         "(\\Flagged)")
        assert typ == "OK"
    m.logout()
    wal = os.path.join(postern.mailbox_dir(mail_server, JDOE, box), "postern.db-wal")
    assert os.path.getsize(wal) < 1024 * 1024, os.path.getsize(wal)
    m = connect(mail_server, tls_ctx)
    typ, data = m.select(box)
    assert typ == "OK" and data == [b"40"], data
    m.logout()

@pytest.fixture(scope="module")
def samples_box(mail_server, tls_ctx):
    m = connect(mail_server, tls_ctx)
    box = fresh_box(m)
    for sample in SAMPLES:
        with open(os.path.join(DATA, sample), "rb") as f:
            deliver(mail_server, f.read(), folder=box)
    typ, data = m.select(box, readonly=True)
    assert typ == "OK" and int(data[0]) == len(SAMPLES), data
    yield m
    m.logout()


def test_mime_answers_match_the_reference(samples_box, mimeprobe):
    m = samples_box
    mismatches = []
    for i, sample in enumerate(SAMPLES):
        uid = i + 1
        raw = raw_fetch(m, uid, "BODY.PEEK[] RFC822.SIZE")
        want = normalised(sample)
        if b"RFC822.SIZE %d" % len(want) not in raw:
            mismatches.append((sample, "RFC822.SIZE"))
        if section_bytes(raw) != want.replace(b"\0", b"\x80"):
            mismatches.append((sample, "BODY[]"))
        for item in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
            ours = item_value(raw_fetch(m, uid, item), item)
            if ours != probe(mimeprobe, sample, item.lower()):
                mismatches.append((sample, item, ours))
        if sample not in SECTION_SAMPLES:
            continue
        for section in SECTIONS:
            got = section_bytes(raw_fetch(m, uid, "BODY.PEEK[%s]" % section))
            if got != probe(mimeprobe, sample, "fetch", section):
                mismatches.append((sample, section, got))
        for section, origin, count in PARTIALS:
            item = "BODY.PEEK[%s]<%d.%d>" % (section, origin, count)
            got = section_bytes(raw_fetch(m, uid, item))
            if got != probe(mimeprobe, sample, "fetch", section, str(origin), str(count)):
                mismatches.append((sample, item, got))
    assert mismatches == []
    # a second round comes from the store's cache and must be the same
    for i, sample in enumerate(SAMPLES):
        for item in ("ENVELOPE", "BODYSTRUCTURE"):
            assert item_value(raw_fetch(m, i + 1, item), item) == probe(
                mimeprobe, sample, item.lower())


# ---- large messages ----

def test_50mb_append_and_fetch_are_streamed(mail_server, tls_ctx):
    line = b"y" * 76 + b"\r\n"
    big = b"Subject: big\r\nFrom: big@example.test\r\n\r\n" + line * (50000000 // 78)
    m = connect(mail_server, tls_ctx)
    box = fresh_box(m)
    m.select(box)
    before = vm_hwm_kb(mail_server.pid)
    started = time.monotonic()
    typ, data = m.append(box, None, None, big)
    append_s = time.monotonic() - started
    assert typ == "OK", data
    started = time.monotonic()
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    fetch_s = time.monotonic() - started
    assert typ == "OK"
    assert b"RFC822.SIZE %d" % len(big) in data[0][0]
    assert hashlib.sha256(data[0][1]).digest() == hashlib.sha256(big).digest()
    typ, data = m.fetch("1", "(BODY.PEEK[TEXT]<49000000.1000>)")
    assert data[0][1] == big[len(b"Subject: big\r\nFrom: big@example.test\r\n\r\n") + 49000000:][:1000]
    growth = vm_hwm_kb(mail_server.pid) - before
    print("50 MB APPEND %.1f s, FETCH %.1f s, posternd VmHWM grew by %d KiB"
          % (append_s, fetch_s, growth))
    if not sanitized(mail_server.pid):
        assert growth < 12 * 1024, "posternd's peak RSS grew by %d KiB" % growth
    # one byte over MaxMessageSize (50M by default) is refused before the data
    m.logout()
    w = wire(mail_server, tls_ctx)
    w.send("t APPEND %s {%d}\r\n" % (box, 50 * 1024 * 1024 + 1))
    assert w.line().startswith("t NO [TOOBIG]")
    assert w.command("d", "DELETE %s" % box)[-1].startswith("d OK")  # 50 MB less in /tmp


# ---- a real sync client ----

@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync (mbsync) not installed")
def test_mbsync_pulls_a_mailbox(mail_server, tls_ctx, test_ca, tmp_path):
    m = connect(mail_server, tls_ctx)
    box = fresh_box(m)
    with open(os.path.join(DATA, "alternative.eml"), "rb") as f:
        alternative = f.read()
    messages = [SIMPLE, alternative, b"Subject: lf only\n\nline\n",
                b"Subject: big one\r\n\r\n" + b"z" * 300000 + b"\r\n"]
    messages += [b"Subject: n%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(40)]
    for msg in messages[:20]:
        deliver(mail_server, msg, folder=box)
    for msg in messages[20:]:
        typ, data = m.append(box, "(\\Seen)", None, msg)
        assert typ == "OK", data
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        "IMAPAccount remote\nHost localhost\nPort %d\nUser jdoe\nPass %s\nSSLType IMAPS\n"
        "CertificateFile %s\n\n"
        "IMAPStore far\nAccount remote\n\n"
        "MaildirStore near\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"
        "Channel ch\nFar :far:\nNear :near:\nPatterns %s\nCreate Near\nSync Pull\n"
        "SyncState *\n" % (mail_server["imaps"], PW, test_ca["cert"], local, local, box))
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run(["mbsync", "-c", str(rc), "-V", "ch"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got, flags = [], []
    for sub in ("cur", "new"):
        d = local / box / sub
        for f in sorted(d.iterdir()) if d.exists() else ():
            got.append(f.read_bytes())
            flags.append(f.name.partition(":2,")[2])
    # mbsync keeps messages as IMAP sends them (CRLF) or stores LF; compare line by line
    # (and marks what it took with an X-TUID header)
    norm = lambda b: re.sub(rb"X-TUID: \S*\n", b"", b.replace(b"\r\n", b"\n"))  # noqa: E731
    assert sorted(map(norm, got)) == sorted(norm(x) for x in messages)
    assert sum(1 for f in flags if "S" in f) == len(messages) - 20
    # a second run has nothing to do, and new mail comes over on the third
    r = subprocess.run(["mbsync", "-c", str(rc), "ch"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    deliver(mail_server, b"Subject: later\r\n\r\nlater\r\n", folder=box)
    r = subprocess.run(["mbsync", "-c", str(rc), "ch"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    count = sum(1 for sub in ("cur", "new") for _ in (local / box / sub).iterdir())
    assert count == len(messages) + 1
    # and the other way: a flag, a deletion and a new message made locally go up
    # (STORE, STORE \Deleted + UID EXPUNGE, APPEND with APPENDUID)
    files = {f.read_bytes().replace(b"\r\n", b"\n"): f
             for sub in ("cur", "new") for f in (local / box / sub).iterdir()}
    hello = next(f for data, f in files.items() if b"Subject: Hello there" in data)
    gone = next(f for data, f in files.items() if b"Subject: n5\n" in data)
    hello.rename(hello.parent / (hello.name.split(":2,")[0] + ":2,F"))
    gone.rename(gone.parent / (gone.name.split(":2,")[0] + ":2,ST"))
    (local / box / "new" / "1700000000.local.postern-test").write_bytes(
        b"Subject: from mbsync\n\nwritten locally\n")
    with open(rc, "a") as f:
        f.write("\nChannel both\nFar :far:\nNear :near:\nPatterns %s\nSync All\n"
                "Expunge Both\nSyncState *\n" % box)
    r = subprocess.run(["mbsync", "-c", str(rc), "both"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m.select(box)
    flagged = m.uid("SEARCH", "FLAGGED")[1][0].split()
    assert len(flagged) == 1
    typ, data = m.uid("FETCH", flagged[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1].startswith(b"Subject: Hello there"), data
    assert m.uid("SEARCH", "SUBJECT", '"n5"')[1] == [b""]
    pushed = m.uid("SEARCH", "SUBJECT", '"from mbsync"')[1][0].split()
    assert len(pushed) == 1
    typ, data = m.uid("FETCH", pushed[0], "(BODY.PEEK[TEXT])")
    assert data[0][1] == b"written locally\r\n"
    m.logout()


# ---- crashes ----

def crash_server(make_server, slapd, prefix):
    return make_server(**server_config(slapd, prefix))


def restart(server):
    server.proc = None
    server.start()


def test_kill9_during_appends(make_server, slapd, tls_ctx):
    """kill -9 while a client appends: every acknowledged message is there once with its UID,
    the one in flight at most once, and UIDs never move."""
    s = crash_server(make_server, slapd, "posternd-imapkill-")
    m = connect(s, tls_ctx)
    box = fresh_box(m)
    acked = {}  # uid -> body
    state = {"stop": False, "error": None}

    def appender():
        try:
            i = 0
            while not state["stop"]:
                body = b"Subject: m%d\r\n\r\n%s\r\n" % (i, b"p" * (i % 5000))
                state["inflight"] = body
                typ, data = m.append(box, None, None, body)
                uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
                acked[uid] = body
                i += 1
        except Exception as exc:  # the server died under us: expected
            state["error"] = exc

    t = threading.Thread(target=appender)
    t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(s.pid, 9)
    s.proc.wait()
    state["stop"] = True
    t.join(30)
    assert state["error"] is not None and len(acked) >= 20, (state, len(acked))
    restart(s)
    m = connect(s, tls_ctx)
    m.select(box)
    typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    assert typ == "OK"
    found = {}
    for piece in data:
        if isinstance(piece, tuple):
            uid = int(re.search(rb"UID (\d+)", piece[0]).group(1))
            found[uid] = piece[1]
    for uid, body in acked.items():
        assert found.get(uid) == body, "acknowledged UID %d lost or changed" % uid
    extra = {u: b for u, b in found.items() if u not in acked}
    assert len(extra) <= 1 and all(b == state["inflight"] for b in extra.values()), extra
    bodies = list(found.values())
    assert len(bodies) == len(set(bodies)), "a message is there twice"
    m.logout()


def test_kill9_during_expunges(make_server, slapd, tls_ctx):
    """kill -9 while a client deletes: an acknowledged EXPUNGE never comes back, the rest is
    there with the same UIDs and bytes, and UIDVALIDITY stays."""
    s = crash_server(make_server, slapd, "posternd-imapkillx-")
    total = 400
    for i in range(total):
        deliver(s, b"Subject: x%d\r\n\r\nbody %d\r\n" % (i, i))
    m = connect(s, tls_ctx)
    typ, data = m.select("INBOX")
    assert int(data[0]) == total
    uidvalidity = m.untagged_responses["UIDVALIDITY"][0]
    typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    before = {}
    for piece in data:
        if isinstance(piece, tuple):
            before[int(re.search(rb"UID (\d+)", piece[0]).group(1))] = piece[1]
    assert len(before) == total
    gone, state = set(), {"error": None, "inflight": set()}
    uids = sorted(before)

    def deleter():
        try:
            for k in range(0, len(uids), 2):
                batch = uids[k:k + 2]
                state["inflight"] = set(batch)
                m.uid("STORE", ",".join(map(str, batch)), "+FLAGS.SILENT", "(\\Deleted)")
                typ, data = m._simple_command("UID", "EXPUNGE", ",".join(map(str, batch)))
                assert typ == "OK", data
                gone.update(batch)
        except Exception as exc:
            state["error"] = exc

    t = threading.Thread(target=deleter)
    t.start()
    deadline = time.monotonic() + 20
    while len(gone) < 60 and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(s.pid, 9)
    s.proc.wait()
    t.join(30)
    assert state["error"] is not None and gone, (state, len(gone))
    restart(s)
    m = connect(s, tls_ctx)
    m.select("INBOX")
    assert m.untagged_responses["UIDVALIDITY"][0] == uidvalidity
    typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    after = {}
    for piece in data:
        if isinstance(piece, tuple):
            uid = int(re.search(rb"UID (\d+)", piece[0]).group(1))
            assert uid not in after, "UID %d twice" % uid
            after[uid] = piece[1]
    assert not (gone & set(after)), "expunged messages came back: %s" % sorted(gone & set(after))
    for uid, body in before.items():
        if uid in gone or uid in state["inflight"]:
            continue
        assert after.get(uid) == body, "UID %d lost or changed" % uid
    assert set(after) <= set(before)
    m.logout()
