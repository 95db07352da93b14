# POP3 after login on the mailbox store (RFC 1939, RFC 2449): every TRANSACTION command through
# poplib and raw lines, sizes against what RETR really sends, the lock, UPDATE only on QUIT,
# a 50 MB message, curl and fetchmail, and a kill -9 in the middle of QUIT's expunge.
import hashlib
import os
import poplib
import re
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from tests.lab import ad, postern
from tests.lab.wire import Wire

PW = "Demo-Pass-1"
JDOE = str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))


@pytest.fixture
def mail_server(slapd, make_server):
    d = postern.public_dir("posternd-pop3-")
    return make_server(directory=d, mail=True, global_extra=postern.directory_block(slapd, d))


def login(server, ctx, user="jdoe"):
    p = poplib.POP3_SSL("127.0.0.1", server["pop3s"], context=ctx, timeout=30)
    p.user(user)
    assert p.pass_(PW).startswith(b"+OK Logged in")
    return p


_delivered = [0]


def deliver(server, message, key=JDOE):
    """postern.deliver(), plus a distinct name and mtime per message: the lab's names can
    repeat within a second (the second delivery then replaces the first), and the store orders
    new mail by mtime (seconds), then by name."""
    path = postern.deliver(server, key, message)
    _delivered[0] += 1
    unique = "%s.%d" % (path, _delivered[0])
    os.rename(path, unique)
    t = time.time() - 100000 + _delivered[0]
    os.utime(unique, (t, t))
    return unique


def maildir_files(server, key=JDOE):
    """{unique part of the name: Maildir flags} of every message file in INBOX's new/ and cur/
    (the store adds ,S= ,W= ,U= to a name when it indexes the file, and moves it to cur/)."""
    root = postern.mailbox_dir(server, key)
    files = {}
    for sub in ("new", "cur"):
        path = os.path.join(root, sub)
        for name in os.listdir(path) if os.path.isdir(path) else ():
            base = re.split(r"[,:]", name, maxsplit=1)[0]
            flags = name.partition(":2,")[2]
            assert base not in files, "message %s twice (%s/%s)" % (base, sub, name)
            files[base] = flags
    return files


def crlf(data):
    """A message as POP3 sends it: every line end CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def retr_bytes(p, n):
    """RETR through poplib: the message as bytes (CRLF line ends), and poplib's octet count."""
    resp, lines, octets = p.retr(n)
    return b"".join(l + b"\r\n" for l in lines), octets, resp


def wire_login(server, ctx):
    w = Wire(server["pop3s"], tls_context=ctx, timeout=30)
    assert w.line().startswith("+OK")
    w.send("USER jdoe\r\nPASS %s\r\n" % PW)
    assert w.line() == "+OK"
    assert w.line().startswith("+OK Logged in")
    return w


def multiline(w, timeout=30):
    """Lines of a multi-line answer after its status line, up to the "." (not un-stuffed)."""
    lines = []
    while True:
        l = w.line(timeout)
        if l == ".":
            return lines
        lines.append(l)


MESSAGES = [
    # CRLF file
    b"From: a@example.test\r\nSubject: one\r\n\r\nfirst body line\r\nsecond\r\n",
    # LF-only file (as most MTAs write Maildir)
    b"From: b@example.test\nSubject: two\n\nbody\n.starts with a dot\n..two dots\n.\nend\n",
    # no final newline
    b"From: c@example.test\nSubject: three\n\nlast line without newline",
]


def test_stat_list_retr_sizes_match_what_is_sent(mail_server, tls_ctx):
    for m in MESSAGES:
        deliver(mail_server, m)
    p = login(mail_server, tls_ctx)
    sizes = [len(crlf(m)) for m in MESSAGES]
    assert p.stat() == (3, sum(sizes))
    resp, listing, _ = p.list()
    assert resp == b"+OK 3 messages (%d octets)" % sum(sizes)
    assert listing == [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)]
    for i, m in enumerate(MESSAGES):
        assert p.list(i + 1) == b"+OK %d %d" % (i + 1, sizes[i])
        data, octets, resp = retr_bytes(p, i + 1)
        assert resp == b"+OK %d octets" % sizes[i]
        if m.endswith(b"\n"):
            assert data == crlf(m) and octets == sizes[i]
        else:  # the server ends the last line before the "."; the size is the message's
            assert data == crlf(m) + b"\r\n" and octets == sizes[i] + 2
    assert p.noop() == b"+OK"
    assert p.quit().startswith(b"+OK")


def test_dot_stuffing_on_the_wire(mail_server, tls_ctx):
    deliver(mail_server, MESSAGES[1])
    deliver(mail_server, b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n")
    with wire_login(mail_server, tls_ctx) as w:
        w.send("RETR 1\r\n")
        assert w.line() == "+OK %d octets" % len(crlf(MESSAGES[1]))
        assert multiline(w) == ["From: b@example.test", "Subject: two", "", "body",
                                "..starts with a dot", "...two dots", "..", "end"]
        w.send("RETR 2\r\nTOP 2 2\r\n")
        assert w.line().startswith("+OK")
        assert multiline(w) == ["Subject: dots", "", "..", "...", "..x", "x."]
        assert w.line() == "+OK"
        assert multiline(w) == ["Subject: dots", "", "..", "..."]
    p = login(mail_server, tls_ctx)
    assert retr_bytes(p, 2)[0] == b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n"
    p.quit()


def test_top(mail_server, tls_ctx):
    body = b"".join(b"line %d\n" % i for i in range(1, 11))
    deliver(mail_server, b"From: t@example.test\nSubject: top\n\n" + body)
    deliver(mail_server, b"Subject: header only\r\nX-Other: yes\r\n")
    deliver(mail_server, b"Subject: short\n\nonly line")  # no final newline
    deliver(mail_server, b"Subject: crlf\r\n\r\nb1\r\nb2\r\n")
    p = login(mail_server, tls_ctx)
    head = [b"From: t@example.test", b"Subject: top", b""]
    assert p.top(1, 0)[1] == head
    assert p.top(1, 3)[1] == head + [b"line 1", b"line 2", b"line 3"]
    assert p.top(1, 10)[1] == head + [b"line %d" % i for i in range(1, 11)]
    assert p.top(1, 1000)[1] == head + [b"line %d" % i for i in range(1, 11)]
    assert p.top(1, 99999999999999999999999)[1] == head + [b"line %d" % i for i in range(1, 11)]
    assert p.top(2, 5)[1] == [b"Subject: header only", b"X-Other: yes"]
    assert p.top(3, 0)[1] == [b"Subject: short", b""]
    assert p.top(3, 1)[1] == [b"Subject: short", b"", b"only line"]
    assert p.top(4, 1)[1] == [b"Subject: crlf", b"", b"b1"]
    p.quit()
    # TOP is a preview: it does not mark the message \Seen (nor does anything but RETR)
    assert all("S" not in flags for flags in maildir_files(mail_server).values())


def test_retr_sets_seen(mail_server, tls_ctx):
    deliver(mail_server, MESSAGES[0])
    deliver(mail_server, MESSAGES[1])
    p = login(mail_server, tls_ctx)
    p.retr(2)
    p.quit()
    files = maildir_files(mail_server)
    assert sorted("S" in flags for flags in files.values()) == [False, True]
    # the second RETR of a seen message changes nothing
    p = login(mail_server, tls_ctx)
    p.retr(2)
    p.quit()
    assert maildir_files(mail_server) == files


def test_uidl_stable_across_sessions_and_restart(mail_server, tls_ctx):
    for m in MESSAGES:
        deliver(mail_server, m)
    p = login(mail_server, tls_ctx)
    resp, uidls, _ = p.uidl()
    assert resp == b"+OK" and len(uidls) == 3
    ids = [l.split()[1] for l in uidls]
    assert len(set(ids)) == 3
    for i in ids:
        assert 1 <= len(i) <= 70 and all(0x21 <= c <= 0x7e for c in i)
    assert p.uidl(2) == b"+OK 2 " + ids[1]
    p.quit()
    p = login(mail_server, tls_ctx)
    assert p.uidl()[1] == uidls
    p.quit()
    mail_server.stop()
    mail_server.start()
    deliver(mail_server, b"Subject: four\r\n\r\nnew\r\n")
    p = login(mail_server, tls_ctx)
    after = p.uidl()[1]
    assert after[:3] == uidls and after[3].split()[1] not in ids
    p.quit()


def test_dele_rset_and_deleted_messages_are_invisible(mail_server, tls_ctx):
    for m in MESSAGES:
        deliver(mail_server, m)
    sizes = [len(crlf(m)) for m in MESSAGES]
    p = login(mail_server, tls_ctx)
    uidls = p.uidl()[1]
    assert p.dele(2) == b"+OK message 2 deleted"
    assert p.stat() == (2, sizes[0] + sizes[2])
    assert p.list()[1] == [b"1 %d" % sizes[0], b"3 %d" % sizes[2]]
    assert p.uidl()[1] == [uidls[0], uidls[2]]
    for call in (lambda: p.list(2), lambda: p.retr(2), lambda: p.top(2, 0),
                 lambda: p.uidl(2)):
        with pytest.raises(poplib.error_proto) as e:
            call()
        assert str(e.value) == "b'-ERR no such message'"
    with pytest.raises(poplib.error_proto) as e:
        p.dele(2)
    assert str(e.value) == "b'-ERR message 2 already deleted'"
    assert p.rset() == b"+OK maildrop has 3 messages (%d octets)" % sum(sizes)
    assert p.stat() == (3, sum(sizes))
    assert retr_bytes(p, 2)[0] == crlf(MESSAGES[1])
    p.quit()
    assert len(maildir_files(mail_server)) == 3


def test_dele_and_quit_removes_the_files(mail_server, tls_ctx):
    for m in MESSAGES:
        deliver(mail_server, m)
    p = login(mail_server, tls_ctx)
    uidls = p.uidl()[1]
    p.dele(1)
    p.dele(3)
    assert p.quit() == b"+OK postern signing off (2 messages deleted)"
    files = maildir_files(mail_server)
    assert len(files) == 1 and "T" not in list(files.values())[0]
    p = login(mail_server, tls_ctx)
    assert p.stat() == (1, len(crlf(MESSAGES[1])))
    assert p.uidl()[1] == [b"1 " + uidls[1].split()[1]]
    assert retr_bytes(p, 1)[0] == crlf(MESSAGES[1])
    p.quit()


def test_nothing_is_deleted_without_quit(mail_server, tls_ctx):
    """A dropped connection, the autologout timer and a server shutdown never enter UPDATE."""
    for m in MESSAGES:
        deliver(mail_server, m)
    before = maildir_files(mail_server)
    # dropped connection
    w = wire_login(mail_server, tls_ctx)
    w.send("DELE 1\r\nDELE 2\r\nDELE 3\r\n")
    assert [w.line() for _ in range(3)] == ["+OK message %d deleted" % i for i in (1, 2, 3)]
    w.sock.close()
    p = login_when_free(mail_server, tls_ctx)
    assert p.stat()[0] == 3
    p.dele(1)
    # server shutdown: the session gets its goodbye, nothing is deleted
    mail_server.stop()
    mail_server.start()
    assert maildir_files(mail_server) == before
    p = login(mail_server, tls_ctx)
    assert p.stat()[0] == 3
    p.quit()
    assert maildir_files(mail_server) == before


def login_when_free(server, ctx, timeout=5.0):
    """Log in as soon as the previous session's lock is gone (a drop is noticed at once, but
    asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return login(server, ctx)
        except poplib.error_proto as e:
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_autologout_deletes_nothing(slapd, make_server, tls_ctx):
    d = postern.public_dir("posternd-pop3-")
    s = make_server(directory=d, mail=True, global_extra=postern.directory_block(slapd, d),
                    pop3_extra="AuthenticatedConnectionTimeout 1")
    deliver(s, MESSAGES[0])
    before = maildir_files(s)
    with wire_login(s, tls_ctx) as w:
        w.send("DELE 1\r\n")
        assert w.line() == "+OK message 1 deleted"
        assert w.line(timeout=5) == "-ERR Disconnected for inactivity"
        assert w.closed()
    p = login_when_free(s, tls_ctx)
    assert p.stat()[0] == 1
    p.quit()
    assert maildir_files(s) == before


def test_second_session_gets_in_use(mail_server, tls_ctx):
    deliver(mail_server, MESSAGES[0])
    first = login(mail_server, tls_ctx)
    p = poplib.POP3_SSL("127.0.0.1", mail_server["pop3s"], context=tls_ctx)
    p.user("jdoe@example.test")  # the same account under another name
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(PW)
    assert str(e.value) == "b'-ERR [IN-USE] Mailbox is locked by another POP3 session'"
    with pytest.raises((EOFError, poplib.error_proto, OSError)):
        p.noop()  # the session ended
    # the lock is the account's; the first session is undisturbed and QUIT releases it
    assert first.stat()[0] == 1
    first.quit()
    p = login(mail_server, tls_ctx)
    assert p.stat()[0] == 1
    p.quit()


def test_command_errors(mail_server, tls_ctx):
    deliver(mail_server, MESSAGES[0])
    with wire_login(mail_server, tls_ctx) as w:
        for cmd, answer in [
            ("RETR 0", "-ERR no such message"),
            ("RETR 2", "-ERR no such message"),
            ("RETR 99999999999999999999999", "-ERR no such message"),
            ("LIST 7", "-ERR no such message"),
            ("DELE 2", "-ERR no such message"),
            ("UIDL 0", "-ERR no such message"),
            ("TOP 2 0", "-ERR no such message"),
            ("RETR", "-ERR Missing argument (RETR msg)"),
            ("RETR x", "-ERR Invalid number (RETR msg)"),
            ("RETR -1", "-ERR Invalid number (RETR msg)"),
            ("RETR 1x", "-ERR Invalid number (RETR msg)"),
            ("TOP 1", "-ERR Missing argument (TOP msg n)"),
            ("TOP 1 -1", "-ERR Invalid number (TOP msg n)"),
            ("LIST 1 2", "-ERR Too many arguments (LIST [msg])"),
            ("STAT 1", "-ERR Too many arguments (STAT)"),
            ("NOOP", "+OK"),  # ten invalid commands in a row would end the session
            ("USER jdoe", "-ERR Command not valid in this state"),
            ("PASS x", "-ERR Command not valid in this state"),
            ("STLS", "-ERR Command not valid in this state"),
            ("AUTH PLAIN", "-ERR Command not valid in this state"),
            ("XYZZY", "-ERR Unknown command"),
            ("LIST  1 ", "+OK 1 %d" % len(MESSAGES[0])),  # extra spaces are tolerated
            ("noop", "+OK"),
        ]:
            w.send(cmd + "\r\n")
            assert w.line() == answer, cmd
        w.send("CAPA\r\n")
        assert w.line().startswith("+OK")
        caps = multiline(w)
        for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER",
                    "USER", "IMPLEMENTATION postern"):
            assert cap in caps, caps
        assert any(c.startswith("SASL ") and "PLAIN" in c.split() for c in caps), caps
        w.send("QUIT\r\n")
        assert w.line() == "+OK postern signing off (0 messages deleted)"
        assert w.closed()


def test_capa_is_the_same_before_and_after_login(mail_server, tls_ctx):
    p = poplib.POP3_SSL("127.0.0.1", mail_server["pop3s"], context=tls_ctx)
    before = p.capa()
    p.user("jdoe")
    p.pass_(PW)
    assert p.capa() == before  # RFC 2449 §5
    assert "TOP" in before and "UIDL" in before and before["EXPIRE"] == ["NEVER"]
    p.quit()


def test_too_many_bad_commands_after_login(mail_server, tls_ctx):
    with wire_login(mail_server, tls_ctx) as w:
        w.send("RETR x\r\n" * 10)
        lines = [w.line() for _ in range(11)]
        assert lines[-1] == "-ERR Too many invalid commands"
        assert w.closed()


def test_pipelined_session(mail_server, tls_ctx):
    """RFC 2449 PIPELINING: everything in one write, answered in order."""
    for m in MESSAGES:
        deliver(mail_server, m)
    w = Wire(mail_server["pop3s"], tls_context=tls_ctx, timeout=30)
    assert w.line().startswith("+OK")
    w.send("CAPA\r\nUSER jdoe\r\nPASS %s\r\nSTAT\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nRETR 1\r\n"
           "LIST\r\nUIDL 3\r\nRETR 3\r\nQUIT\r\n" % PW)
    assert w.line().startswith("+OK")
    multiline(w)
    assert w.line() == "+OK"
    assert w.line().startswith("+OK Logged in")
    assert w.line() == "+OK 3 %d" % sum(len(crlf(m)) for m in MESSAGES)
    assert w.line() == "+OK %d octets" % len(MESSAGES[0])
    assert "\r\n".join(multiline(w)) + "\r\n" == MESSAGES[0].decode()
    assert w.line() == "+OK"
    assert multiline(w) == ["From: b@example.test", "Subject: two", ""]
    assert w.line() == "+OK message 1 deleted"
    assert w.line() == "-ERR no such message"
    assert w.line().startswith("+OK 2 messages")
    assert multiline(w) == ["2 %d" % len(crlf(MESSAGES[1])), "3 %d" % len(crlf(MESSAGES[2]))]
    assert re.fullmatch(r"\+OK 3 [0-9a-f]+\.[0-9a-f]+", w.line())
    assert w.line().startswith("+OK")
    assert multiline(w)[-1] == "last line without newline"
    assert w.line() == "+OK postern signing off (1 messages deleted)"
    assert w.closed()
    w.close()
    assert len(maildir_files(mail_server)) == 2


def test_without_mailbox_root(slapd, make_server, tls_ctx):
    d = postern.public_dir("posternd-pop3-")
    s = make_server(directory=d, global_extra=postern.directory_block(slapd, d))
    p = login(s, tls_ctx)
    with pytest.raises(poplib.error_proto) as e:
        p.stat()
    assert str(e.value).startswith("b'-ERR [SYS/PERM] Mailbox access is not yet available")
    assert "TOP" not in p.capa()
    assert p.quit() == b"+OK postern signing off"


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def test_50mb_message_is_streamed(mail_server, tls_ctx):
    line = b"x" * 76 + b"\n"
    big = b"Subject: big\n\n" + line * (50 * 1024 * 1024 // len(line)) + b".\n"
    deliver(mail_server, big)
    p = login(mail_server, tls_ctx)
    size = p.stat()[1]
    assert size == len(crlf(big))
    before = vm_hwm_kb(mail_server.pid)
    started = time.monotonic()
    # raw, so the client does not hold 50 MB of lines either
    p._putcmd("RETR 1")
    assert p._getresp() == b"+OK %d octets" % size
    digest, octets = hashlib.sha256(), 0
    while True:
        l, o = p._getline()
        if l == b".":
            break
        if l.startswith(b".."):
            l, o = l[1:], o - 1
        digest.update(l + b"\r\n")
        octets += o
    elapsed = time.monotonic() - started
    assert octets == size
    assert digest.hexdigest() == hashlib.sha256(crlf(big)).hexdigest()
    growth = vm_hwm_kb(mail_server.pid) - before
    print("50 MB RETR: %.1f s, posternd VmHWM grew by %d KiB" % (elapsed, growth))
    if not sanitized(mail_server.pid):
        assert growth < 8 * 1024, "posternd's peak RSS grew by %d KiB" % growth
    p.quit()


def test_curl_lists_and_retrieves(mail_server, test_ca):
    for m in MESSAGES:
        deliver(mail_server, m)
    port = mail_server["pop3s"]
    base = ["curl", "-sS", "--cacert", test_ca["cert"], "--connect-to",
            "localhost:%d:127.0.0.1:%d" % (port, port), "-u", "jdoe:%s" % PW,
            "--login-options", "AUTH=PLAIN"]
    r = subprocess.run(base + ["pop3s://localhost:%d/" % port], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(b"\r\n")[:-1] == [b"%d %d" % (i + 1, len(crlf(m)))
                                            for i, m in enumerate(MESSAGES)]
    r = subprocess.run(base + ["pop3s://localhost:%d/2" % port], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == crlf(MESSAGES[1])


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
def test_fetchmail_downloads_and_deletes(mail_server, test_ca, tmp_path):
    messages = MESSAGES + [b"Subject: m%d\n\n%s\n" % (i, b"y" * i * 100) for i in range(20)]
    for m in messages:
        deliver(mail_server, m)
    out = tmp_path / "out"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        'set no syslog\n'
        'poll localhost via 127.0.0.1 with protocol POP3 port %d uidl:\n'
        '  auth password user "jdoe" there with password "%s" is "root" here\n'
        '  ssl sslcertck sslcertfile "%s" sslcommonname localhost\n'
        '  no rewrite\n'
        '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n'
        % (mail_server["pop3s"], PW, test_ca["cert"], out))
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--invisible", "-v"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(f.read_bytes() for f in out.iterdir())
    # fetchmail delivers with LF line ends (and a last line ended); nothing else changes
    want = sorted(m.replace(b"\r\n", b"\n") + (b"" if m.endswith(b"\n") else b"\n")
                  for m in messages)
    assert got == want
    assert maildir_files(mail_server) == {}  # fetched, then DELE + QUIT
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "-v"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1, r.stdout + r.stderr  # 1: no mail


def test_kill_during_quit_expunge_is_consistent(mail_server, tls_ctx):
    """kill -9 while QUIT expunges: each message is either gone or fully there (file and
    listing), never both listed and missing, never twice."""
    total = 1500
    for i in range(total):
        deliver(mail_server, b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
    expected = {}
    p = login(mail_server, tls_ctx)
    assert p.stat()[0] == total
    for l in p.uidl()[1]:
        n, uid = l.split()
        expected[uid] = int(n)
    p.quit()
    maildir = postern.mailbox_dir(mail_server, JDOE)
    for round_, trigger in enumerate(("flagged", "unlinked")):
        w = wire_login(mail_server, tls_ctx)
        w.send("".join("DELE %d\r\n" % n for n in range(1, len(expected) + 1)))
        for _ in expected:
            assert w.line().startswith("+OK message")
        before = set(os.listdir(os.path.join(maildir, "cur")))
        w.send("QUIT\r\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = set(os.listdir(os.path.join(maildir, "cur")))
            if trigger == "flagged" and any(n.endswith("T") for n in now):
                break
            # (a listing taken during renames may miss names: count only when all are flagged)
            if (trigger == "unlinked" and len(now) < len(before) - 10
                    and all(n.endswith("T") for n in now)):
                break
        mail_server.proc.kill()
        mail_server.proc.wait()
        w.close()
        files = maildir_files(mail_server)
        mail_server.start()
        p = login(mail_server, tls_ctx)
        count, _ = p.stat()
        listed = [l.split()[1] for l in p.uidl()[1]]
        assert len(listed) == len(set(listed)) == count
        assert set(listed) <= set(expected)
        # what is listed is there and readable; what is not listed has no file
        assert count == len(files), (round_, count, len(files))
        for n in (1, count // 2, count):
            if count:
                data, _, _ = retr_bytes(p, n)
                assert data.startswith(b"Subject: m")
        p.quit()
        print("round %d (%s): %d of %d messages left" % (round_, trigger, count, len(expected)))
        expected = {uid: i + 1 for i, uid in enumerate(listed)}
