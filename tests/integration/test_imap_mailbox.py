# IMAP after login on the mailbox store (RFC 3501, extensions named per test) through Python's
# imaplib: login opens the account, mailbox management, SELECT/EXAMINE, FETCH of every item
# (bodies streamed), STORE, EXPUNGE/CLOSE/UNSELECT, SEARCH, COPY/MOVE with UIDPLUS, APPEND,
# NAMESPACE/ENABLE, errors and malformed input. IDLE, concurrent sessions, large messages,
# mbsync and crashes are in test_imap_mailbox_sync.py.
import imaplib
import os
import pwd
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
NOBODY = (pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)

SIMPLE = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
          b"Subject: Hello there\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\n"
          b"Message-ID: <m1@example.test>\r\n\r\nThe body, line one.\r\nLine two.\r\n")


@pytest.fixture(scope="module")
def mail_server(slapd, server_tls):
    d = postern.public_dir("posternd-imapmb-")
    s = postern.Posternd(server_tls, directory=d, mail=True,
                         global_extra=postern.directory_block(slapd, d))
    s.write_config()
    s.start()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


_delivered = [0]


def deliver(server, message, key=JDOE, folder="INBOX"):
    """postern.deliver() with a distinct name and mtime per message (the lab's names can repeat
    within a second, and the store orders new mail by mtime, then name)."""
    path = postern.deliver(server, key, message, folder=folder)
    _delivered[0] += 1
    unique = "%s.%d" % (path, _delivered[0])
    os.rename(path, unique)
    t = time.time() - 100000 + _delivered[0]
    os.utime(unique, (t, t))
    return unique


def connect(server, ctx, user="jdoe"):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=30)
    typ, data = m.login(user, PW)
    assert typ == "OK", data
    return m


@pytest.fixture
def imap(mail_server, tls_ctx):
    """A session of jdoe with a fresh, empty mailbox "T<n>" selected."""
    m = connect(mail_server, tls_ctx)
    name = "T%d" % time.monotonic_ns()
    assert m.create(name)[0] == "OK"
    assert m.select(name)[0] == "OK"
    m.test_box = name
    yield m
    try:
        m.logout()
    except Exception:
        pass


def append(m, box, message, flags=None, date=None):
    typ, data = m.append(box, flags, date, message)
    assert typ == "OK", data
    code = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert code, data
    return int(code.group(2))


LIST_LINE = re.compile(r'^\((?P<attrs>[^)]*)\) "(?P<delim>[^"]*)" (?P<name>.*)$')


def unquote(name):
    if name.startswith('"'):
        return re.sub(r'\\(.)', r'\1', name[1:-1])
    return name


def list_boxes(m, ref="", pattern="*", command="LIST"):
    """{name: set of attributes} of LIST (or LSUB)."""
    typ, data = m._simple_command(command, '"%s"' % ref, pattern)
    assert typ == "OK", data
    typ, data = m._untagged_response(typ, data, command)
    boxes = {}
    for line in data:
        if line is None:
            continue
        mo = LIST_LINE.match(line.decode())
        assert mo, line
        assert mo.group("delim") == "/"
        boxes[unquote(mo.group("name"))] = set(mo.group("attrs").split())
    return boxes


def bad(fn, *args):
    """imaplib raises on a tagged BAD; returns its text."""
    with pytest.raises(imaplib.IMAP4.error) as e:
        fn(*args)
    assert "BAD" in str(e.value), e.value
    return str(e.value)


def tagged(m, *command):
    """(status, text of the tagged response) of a command imaplib has no method for, or whose
    tagged text it drops (UID COPY)."""
    typ, data = m._simple_command(*command)
    return typ, data[0] if data else b""


def fetch_one(m, uid, item):
    """The value of one FETCH item (a literal's bytes, or the parenthesised text)."""
    typ, data = m.uid("FETCH", str(uid), "(%s)" % item)
    assert typ == "OK", data
    return data


# ---- login and capabilities ----

def test_login_opens_the_account(mail_server, tls_ctx):
    m = connect(mail_server, tls_ctx)
    caps = m.capability()[1][0].decode().split()
    for cap in ("IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT", "SPECIAL-USE", "CHILDREN",
                "ENABLE", "ESEARCH"):
        assert cap in caps, caps
    assert any(c.startswith("APPENDLIMIT=") for c in caps)
    assert not any(c.startswith("AUTH=") for c in caps)
    root = os.path.join(mail_server.mail_root, JDOE)
    assert os.path.isdir(os.path.join(root, "cur"))
    boxes = list_boxes(m)
    assert "INBOX" in boxes, boxes
    assert "\\Sent" in boxes["Sent"] and "\\Trash" in boxes["Trash"], boxes
    assert "\\Drafts" in boxes["Drafts"] and "\\Junk" in boxes["Junk"], boxes
    m.logout()


def test_select_inbox_and_fetch_delivered(mail_server, tls_ctx):
    deliver(mail_server, SIMPLE)
    m = connect(mail_server, tls_ctx)
    typ, data = m.select("INBOX")
    assert typ == "OK"
    n = int(data[0])
    assert n >= 1
    typ, data = m.fetch(str(n), "(FLAGS RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", data
    assert data[0][1] == SIMPLE
    assert b"RFC822.SIZE %d" % len(SIMPLE) in data[0][0]
    m.logout()


# ---- mailbox management ----

def test_create_list_rename_delete(imap):
    m = imap
    base = m.test_box
    assert m.create(base + "/Projects/2026/")[0] == "OK"  # trailing delimiter: children intended
    boxes = list_boxes(m, pattern=base + "*")
    assert boxes[base] >= {"\\HasChildren"}
    assert "\\HasChildren" in boxes[base + "/Projects"]
    assert "\\HasNoChildren" in boxes[base + "/Projects/2026"]
    # % stops at the delimiter
    assert set(list_boxes(m, pattern=base + "/%")) == {base + "/Projects"}
    assert set(list_boxes(m, ref=base + "/", pattern="%")) == {base + "/Projects"}
    # the empty pattern gives the delimiter
    typ, data = m.list('""', '""')
    assert typ == "OK" and data[0] == b'(\\Noselect) "/" ""', data
    typ, data = m.create(base + "/Projects")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0], data
    assert m.rename(base + "/Projects", base + "/Work")[0] == "OK"
    boxes = list_boxes(m, pattern=base + "*")
    assert base + "/Work/2026" in boxes and base + "/Projects" not in boxes
    typ, data = m.rename(base + "/Nothing", base + "/Other")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    typ, data = m.rename(base + "/Work", base + "/Work/2026")
    assert typ == "NO", data
    assert m.delete(base + "/Work/2026")[0] == "OK"
    typ, data = m.delete(base + "/Work/2026")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    typ, data = m.delete("INBOX")
    assert typ == "NO" and b"[CANNOT]" in data[0], data
    typ, data = m.delete(base)
    assert typ == "NO" and b"[INUSE]" in data[0], data  # selected in this session


def test_unicode_mailbox_names(imap):
    m = imap
    # "Entwürfe-<n>" in modified UTF-7 (RFC 3501 §5.1.3)
    name = m.test_box + "/Entw&APw-rfe"
    assert m.create(name)[0] == "OK"
    assert name in list_boxes(m, pattern=m.test_box + "/*")
    # a pattern in UTF-7 matches, and so does a wildcard
    assert name in list_boxes(m, pattern=m.test_box + "/Entw&APw-*")
    assert name in list_boxes(m, pattern=m.test_box + "/Entw%")
    bad(m.create, m.test_box + "/bad&Jjo")  # unterminated modified UTF-7
    typ, data = m.status(name, "(MESSAGES)")
    assert typ == "OK", data


def test_subscribe_lsub(imap):
    m = imap
    base = m.test_box
    m.create(base + "/a/b")
    assert m.subscribe(base + "/a/b")[0] == "OK"
    typ, data = m.lsub('""', base + "/*")
    assert typ == "OK"
    assert any(l.endswith(('/a/b"', "/a/b")) for l in [d.decode() for d in data]), data
    # "%" lists the unsubscribed parent as \Noselect (RFC 3501 §6.3.9)
    typ, data = m.lsub('""', base + "/%")
    assert typ == "OK" and len(data) == 1 and b"\\Noselect" in data[0], data
    assert m.unsubscribe(base + "/a/b")[0] == "OK"
    typ, data = m.lsub('""', base + "/*")
    assert data == [None], data
    # defaults are subscribed at first login
    typ, data = m.lsub('""', "*")
    names = {unquote(LIST_LINE.match(l.decode()).group("name")) for l in data}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk"} <= names, names


def test_status(imap):
    m = imap
    box = m.test_box
    append(m, box, SIMPLE)
    append(m, box, SIMPLE, flags="(\\Seen)")
    typ, data = m.status(box, "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK", data
    mo = re.search(rb"MESSAGES (\d+) RECENT (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+) UNSEEN (\d+)",
                   data[0])
    assert mo, data
    assert int(mo.group(1)) == 2 and int(mo.group(5)) == 1
    assert int(mo.group(3)) >= 3 and int(mo.group(4)) > 0
    typ, data = m.status(box + "/none", "(MESSAGES)")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    bad(m.status, box, "(BOGUS)")


def test_select_examine_responses(imap, mail_server, tls_ctx):
    m = imap
    box = m.test_box
    append(m, box, SIMPLE, flags="(\\Seen $Important)")
    append(m, box, SIMPLE)
    m2 = connect(mail_server, tls_ctx)
    typ, data = m2.select(box)
    assert typ == "OK" and data == [b"2"], data
    assert m2.untagged_responses.get("UIDVALIDITY")
    assert m2.untagged_responses.get("UIDNEXT")
    assert m2.untagged_responses.get("UNSEEN") == [b"2"]
    flags = m2.untagged_responses["FLAGS"][0]
    assert b"$Important" in flags and b"\\Seen" in flags, flags
    assert b"\\*" in m2.untagged_responses["PERMANENTFLAGS"][0]
    assert m2.untagged_responses["READ-WRITE"] == [b""]
    m2.close()
    typ, data = m2.select(box, readonly=True)
    assert typ == "OK" and m2.untagged_responses["READ-ONLY"] == [b""], m2.untagged_responses
    typ, data = m2.store("1", "+FLAGS", "\\Flagged")
    assert typ == "NO" and b"READ-ONLY" in data[0], data
    # EXAMINE does not set \Seen by reading
    m2.fetch("2", "(BODY[])")
    typ, data = m2.fetch("2", "(FLAGS)")
    assert b"\\Seen" not in data[0], data
    typ, data = m2.select(box + "/missing")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    assert m2.state == "AUTH"  # the failed SELECT left the selected state (RFC 3501 §6.3.1)
    m2.logout()


# ---- FETCH ----

MULTI = (b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.test>\r\n"
         b"To: team@example.test, \"Doe, John\" <jdoe@example.test>\r\n"
         b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus =?UTF-8?B?S8O2bG4=?=\r\n"
         b"Date: Tue, 3 Feb 2026 08:30:00 +0000\r\n"
         b"Message-ID: <multi@example.test>\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
         b"preamble\r\n--outer\r\n"
         b"Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
         b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe, the plain part.\r\n"
         b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
         b"<p>Gr&uuml;&szlig;e, the html part.</p>\r\n--inner--\r\n"
         b"--outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
         b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+Pgo=\r\n"
         b"--outer--\r\nepilogue\r\n")


def test_fetch_items(imap):
    m = imap
    uid = append(m, m.test_box, MULTI, flags="(\\Flagged)", date='"03-Feb-2026 09:30:00 +0100"')
    typ, data = m.uid("FETCH", str(uid), "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
    assert typ == "OK", data
    text = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b"UID %d" % uid in text
    assert b"FLAGS (\\Flagged \\Recent)" in text or b"FLAGS (\\Flagged)" in text, text
    assert b'INTERNALDATE " 3-Feb-2026 08:30:00 +0000"' in text, text
    assert b"RFC822.SIZE %d" % len(MULTI) in text
    assert b'"<multi@example.test>"' in text
    # BODY[] whole, RFC822.HEADER, RFC822.TEXT, sections, partials
    assert fetch_one(m, uid, "BODY.PEEK[]")[0][1] == MULTI
    header, _, body = MULTI.partition(b"\r\n\r\n")
    assert fetch_one(m, uid, "RFC822.HEADER")[0][1] == header + b"\r\n\r\n"
    assert fetch_one(m, uid, "BODY.PEEK[TEXT]")[0][1] == body
    assert fetch_one(m, uid, "BODY.PEEK[1.1]")[0][1] == b"Gr\xc3\xbc\xc3\x9fe, the plain part."
    assert fetch_one(m, uid, "BODY.PEEK[1.2.MIME]")[0][1] == (
        b"Content-Type: text/html; charset=utf-8\r\n\r\n")
    assert fetch_one(m, uid, "BODY.PEEK[2]")[0][1] == (
        b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+Pgo=")
    assert fetch_one(m, uid, "BODY.PEEK[]<6.10>")[0] == (b"%d (UID %d BODY[]<6> {10}" % (
        1, uid), MULTI[6:16]) or fetch_one(m, uid, "BODY.PEEK[]<6.10>")[0][1] == MULTI[6:16]
    assert fetch_one(m, uid, "BODY.PEEK[]<%d.10>" % (len(MULTI) + 5))[0][1] == b""
    fields = fetch_one(m, uid, "BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)]")[0][1]
    assert fields == (b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus =?UTF-8?B?S8O2bG4=?=\r\n"
                      b"Message-ID: <multi@example.test>\r\n\r\n"), fields
    notfields = fetch_one(m, uid, "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE FROM TO)]")[0][1]
    assert b"Subject:" not in notfields and b"Message-ID:" in notfields
    # a part that does not exist is empty
    assert fetch_one(m, uid, "BODY.PEEK[7]")[0][1] == b""
    # BODYSTRUCTURE and BODY
    bs = b"".join(x if isinstance(x, bytes) else b"".join(x)
                  for x in fetch_one(m, uid, "BODYSTRUCTURE"))
    assert b'("application" "pdf" ("name" "report.pdf") NIL NIL "base64"' in bs, bs
    assert b'"alternative" ("boundary" "inner")' in bs, bs
    body_only = b"".join(x if isinstance(x, bytes) else b"".join(x)
                         for x in fetch_one(m, uid, "BODY"))
    assert b'"mixed")' in body_only, body_only  # no extension data in BODY


def test_fetch_header_items_with_others(imap):
    """HEADER, HEADER.FIELDS and RFC822.HEADER read only the message's header; asked together
    with the whole message, its size or its structure, each item is still whole and exact."""
    m = imap
    uid = append(m, m.test_box, MULTI)
    header, _, body = MULTI.partition(b"\r\n\r\n")
    for items in ("(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[])",
                  "(BODY.PEEK[HEADER] RFC822.SIZE BODY.PEEK[TEXT] BODYSTRUCTURE)",
                  "(RFC822.HEADER BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)] RFC822.SIZE)"):
        typ, data = m.uid("FETCH", str(uid), items)
        assert typ == "OK", data
        text = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
        assert b"RFC822.SIZE %d" % len(MULTI) in text, (items, text)
        literals = [x[1] for x in data if isinstance(x, tuple)]
        if "BODY.PEEK[]" in items:
            assert MULTI in literals or text.count(MULTI) == 1, items
        if "BODY.PEEK[TEXT]" in items:
            assert body in text and b'"alternative"' in text, items
        if "BODY.PEEK[HEADER]" in items or "RFC822.HEADER" in items:
            assert (header + b"\r\n\r\n") in text, items
    # the same for every message of a batch, the header read alone each time
    uids = [append(m, m.test_box, MULTI.replace(b"multi@", b"multi%d@" % i)) for i in range(20)]
    typ, data = m.uid("FETCH", "%d:%d" % (uids[0], uids[-1]),
                      "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    assert typ == "OK", data
    got = [x[1] for x in data if isinstance(x, tuple)]
    assert got == [b"Message-ID: <multi%d@example.test>\r\n\r\n" % i for i in range(20)], got

def test_fetch_sets_seen_and_echoes_flags(imap):
    m = imap
    uid = append(m, m.test_box, SIMPLE)
    typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[HEADER])")
    assert b"\\Seen" not in data[0][0]
    typ, data = m.uid("FETCH", str(uid), "(BODY[TEXT])")
    assert typ == "OK"
    text = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b"FLAGS (\\Seen" in text, data  # the change is echoed (RFC 3501 §6.4.5)
    typ, data = m.uid("FETCH", str(uid), "(FLAGS)")
    assert b"\\Seen" in data[0]


def test_fetch_macros_and_sequence_errors(imap):
    m = imap
    for _ in range(3):
        append(m, m.test_box, SIMPLE)
    typ, data = m.fetch("1:*", "FAST")
    assert typ == "OK" and len(data) == 3, data
    typ, data = m.fetch("2", "ALL")
    assert typ == "OK" and b"ENVELOPE" in data[0] and b"INTERNALDATE" in data[0], data
    typ, data = m.fetch("2", "FULL")
    assert typ == "OK" and b"BODY (" in b"".join(
        x if isinstance(x, bytes) else b"".join(x) for x in data), data
    bad(m.fetch, "4", "(FLAGS)")  # beyond the mailbox
    bad(m.fetch, "0", "(FLAGS)")
    bad(m.fetch, "1", "(BOGUS)")
    typ, data = m.uid("FETCH", "999999:*", "(FLAGS)")
    assert typ == "OK" and len(data) == 1, data  # n:* always includes the last UID
    typ, data = m.uid("FETCH", "999990:999999", "(FLAGS)")
    assert typ == "OK" and data == [None], data


def test_fetch_quoted_header_field_names(imap):
    m = imap
    uid = append(m, m.test_box, SIMPLE)
    w = m  # imaplib sends the text as it is
    typ, data = w.uid("FETCH", str(uid), '(BODY.PEEK[HEADER.FIELDS ("Subject" "To")])')
    assert typ == "OK", data
    assert data[0][1] == b"To: Bob <bob@example.test>\r\nSubject: Hello there\r\n\r\n", data


def test_lf_only_message_is_sent_with_crlf(mail_server, tls_ctx):
    box = "LF%d" % time.monotonic_ns()
    m = connect(mail_server, tls_ctx)
    m.create(box)
    lf = SIMPLE.replace(b"\r\n", b"\n") + b"nul\x00byte\n"
    deliver(mail_server, lf, folder=box)
    m.select(box)
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT]<0.9>)")
    assert typ == "OK", data
    want = lf.replace(b"\n", b"\r\n").replace(b"\x00", b"\x80")
    assert data[0][1] == want
    assert b"RFC822.SIZE %d" % len(want) in data[0][0]
    assert data[1][1] == b"The body,"
    m.logout()


# ---- STORE ----

def test_store(imap):
    m = imap
    for _ in range(3):
        append(m, m.test_box, SIMPLE)
    typ, data = m.store("1:2", "+FLAGS", "(\\Flagged $Label1)")
    assert typ == "OK" and len(data) == 2, data
    assert all(b"\\Flagged" in d and b"$Label1" in d for d in data), data
    typ, data = m.store("2", "-FLAGS", "($Label1)")
    assert typ == "OK" and b"$Label1" not in data[0] and b"\\Flagged" in data[0], data
    typ, data = m.store("3", "FLAGS.SILENT", "(\\Answered \\Draft)")
    assert typ == "OK" and data == [None], data
    typ, data = m.fetch("3", "(FLAGS)")
    assert b"\\Answered" in data[0] and b"\\Draft" in data[0]
    typ, data = m.uid("STORE", "1:*", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and all(b"UID " in d for d in data), data
    bad(m.store, "1", "+FLAGS", "(\\Recent)")
    bad(m.store, "1", "+FLAGS", "(\\Bogus)")
    bad(m.store, "1", "XFLAGS", "(\\Seen)")


# ---- EXPUNGE / CLOSE / UNSELECT ----

def test_expunge_close_unselect(imap):
    m = imap
    uids = [append(m, m.test_box, SIMPLE) for _ in range(5)]
    m.store("2,4", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"4", b"2"], data  # highest first: numbers stay valid
    typ, data = m.uid("SEARCH", "ALL")
    assert data[0].split() == [str(u).encode() for u in (uids[0], uids[2], uids[4])]
    # UID EXPUNGE only removes the named \Deleted messages (RFC 4315)
    m.store("1:3", "+FLAGS", "(\\Deleted)")
    typ, data = m.uid("EXPUNGE", str(uids[2]))
    assert typ == "OK", data
    assert m.untagged_responses.get("EXPUNGE") == [b"2"], m.untagged_responses
    typ, data = m.uid("SEARCH", "ALL")
    assert data[0].split() == [str(uids[0]).encode(), str(uids[4]).encode()]
    # UNSELECT leaves the \Deleted ones
    typ, data = m._simple_command("UNSELECT")
    assert typ == "OK", data
    m.state = "AUTH"
    typ, data = m.select(m.test_box)
    assert data == [b"2"]
    # CLOSE expunges them silently
    typ, data = m.close()
    assert typ == "OK" and m.untagged_responses.get("EXPUNGE") is None
    typ, data = m.status(m.test_box, "(MESSAGES)")
    assert b"MESSAGES 0" in data[0], data
    m.select(m.test_box)


# ---- SEARCH ----

def test_search(imap):
    m = imap
    u1 = append(m, m.test_box, SIMPLE, flags="(\\Seen)")
    u2 = append(m, m.test_box, MULTI, flags="(\\Flagged $Work)")
    u3 = append(m, m.test_box, b"From: carol@example.test\r\nSubject: big\r\n"
                b"Date: Wed, 4 Mar 2026 12:00:00 +0000\r\n\r\n" + b"x" * 5000 + b"\r\n")

    def search(*criteria, charset=None, uid=True):
        typ, data = (m.uid("SEARCH", *((("CHARSET", charset) if charset else ()) + criteria))
                     if uid else m.search(charset, *criteria))
        assert typ == "OK", data
        return [int(x) for x in data[0].split()]

    assert search("ALL") == [u1, u2, u3]
    assert search("SEEN") == [u1]
    assert search("UNSEEN") == [u2, u3]
    assert search("FLAGGED") == [u2]
    assert search("KEYWORD", "$Work") == [u2]
    assert search("FROM", "alice") == [u1]
    assert search("SUBJECT", "hello") == [u1]
    # decoded headers: RFC 2047 in ISO-8859-1 and UTF-8
    assert search("SUBJECT", '"Gr\xfc\xdfe"'.encode("utf-8"), charset="UTF-8") == [u2]
    assert search("FROM", '"M\xfcller"'.encode("utf-8"), charset="UTF-8") == [u2]
    # decoded bodies, case-insensitive
    assert search("BODY", "\"PLAIN PART\"") == [u2]
    assert search("TEXT", "multi@example") == [u2]
    assert search("LARGER", "4000") == [u3]
    assert search("SMALLER", "400") == [u1]
    assert search("SENTBEFORE", "3-Feb-2026") == [u1]
    assert search("SENTON", "3-Feb-2026") == [u2]
    assert search("SENTSINCE", "4-Mar-2026") == [u3]
    assert search("OR", "SEEN", "FLAGGED") == [u1, u2]
    assert search("NOT", "SEEN", "NOT", "FLAGGED") == [u3]
    assert search("UID", "%d:%d" % (u2, u3)) == [u2, u3]
    assert search("HEADER", "Message-ID", "m1@") == [u1]
    assert search("1:2", uid=False) == [1, 2]
    typ, data = m.search("X-BOGUS", "ALL")
    assert typ == "NO" and b"[BADCHARSET" in data[0], data
    bad(m.search, None, "BOGUS")
    # ESEARCH results (RFC 4731)
    typ, data = m.uid("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "ALL")
    assert typ == "OK", data
    esearch = m.untagged_responses.get("ESEARCH") or data
    text = b" ".join(x for x in esearch if x)
    assert b"UID" in text and b"MIN %d" % u1 in text and b"COUNT 3" in text, text


# ---- COPY / MOVE / UIDPLUS ----

def test_copy_move_uidplus(imap):
    m = imap
    src = m.test_box
    dst = src + "-dst"
    uids = [append(m, src, SIMPLE) for _ in range(3)]
    typ, data = m.copy("1:2", dst)
    assert typ == "NO" and b"[TRYCREATE]" in data[0], data
    m.create(dst)
    typ, text = tagged(m, "UID", "COPY", "%d:%d" % (uids[0], uids[1]), dst)
    assert typ == "OK", text
    mo = re.search(rb"\[COPYUID (\d+) (\S+) (\S+)\]", text)
    assert mo and mo.group(2) == b"%d:%d" % (uids[0], uids[1]), text
    typ, data = m.status(dst, "(MESSAGES)")
    assert b"MESSAGES 2" in data[0]
    typ, data = m._simple_command("MOVE", "2", dst)
    assert typ == "OK", data
    ok = m.untagged_responses.get("OK", [])
    assert any(b"COPYUID" in x for x in ok), m.untagged_responses
    assert m.untagged_responses.get("EXPUNGE") == [b"2"], m.untagged_responses
    typ, data = m.uid("MOVE", str(uids[2]), dst)
    assert typ == "OK", data
    typ, data = m.status(dst, "(MESSAGES)")
    assert b"MESSAGES 4" in data[0]
    typ, data = m.uid("SEARCH", "ALL")
    assert [int(x) for x in data[0].split()] == [uids[0]]
    # the copies are whole
    m.select(dst)
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    assert all(d[1] == SIMPLE for d in data if isinstance(d, tuple))


# ---- APPEND ----

def test_append(imap):
    m = imap
    uid = append(m, m.test_box, SIMPLE, flags="(\\Seen \\Draft $Custom)",
                 date='" 5-Jan-2026 07:08:09 -0500"')
    typ, data = m.uid("FETCH", str(uid), "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    assert b"\\Seen" in data[0][0] and b"\\Draft" in data[0][0] and b"$Custom" in data[0][0]
    assert b'INTERNALDATE " 5-Jan-2026 12:08:09 +0000"' in data[0][0], data
    assert data[0][1] == SIMPLE
    # the selected mailbox reports it (EXISTS)
    assert m.untagged_responses.get("EXISTS"), m.untagged_responses
    typ, data = m.append(m.test_box + "/missing", None, None, SIMPLE)
    assert typ == "NO" and b"[TRYCREATE]" in data[0], data
    bad(m.append, m.test_box, "(\\Recent)", None, SIMPLE)
    # an empty message is a message
    uid = append(m, m.test_box, b"")
    assert fetch_one(m, uid, "RFC822.SIZE")[0].endswith(b"RFC822.SIZE 0)")


def test_append_wire(mail_server, tls_ctx):
    """LITERAL+ and synchronizing literals, a refused size before the data is sent, junk after
    the literal, and pipelining behind APPEND."""
    w = Wire(mail_server["imaps"], tls_context=tls_ctx, timeout=30)
    w.line()
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    box = "W%d" % time.monotonic_ns()
    assert w.command("b", "CREATE %s" % box)[-1].startswith("b OK")
    w.send("c APPEND %s {%d+}\r\n" % (box, len(SIMPLE)))
    w.send(SIMPLE + b"\r\nd NOOP\r\n")
    assert re.match(r"c OK \[APPENDUID \d+ 1\]", w.until_tagged("c")[-1])
    assert w.until_tagged("d")[-1].startswith("d OK")
    w.send("e APPEND %s (\\Seen) {%d}\r\n" % (box, len(SIMPLE)))
    assert w.line().startswith("+ ")
    w.send(SIMPLE + b"\r\n")
    assert re.match(r"e OK \[APPENDUID \d+ 2\]", w.until_tagged("e")[-1])
    # bigger than APPENDLIMIT: refused before any data is sent
    w.send("f APPEND %s {999999999999}\r\n" % box)
    assert w.line().startswith("f NO [TOOBIG]")
    # missing mailbox with a synchronizing literal: no "+", a TRYCREATE
    w.send("g APPEND %s-none {5}\r\n" % box)
    assert w.line().startswith("g NO [TRYCREATE]")
    # ... and with LITERAL+: the data is swallowed, then the answer
    w.send("h APPEND %s-none {5+}\r\nhello\r\n" % box)
    assert w.until_tagged("h")[-1].startswith("h NO [TRYCREATE]")
    # junk after the literal
    w.send("i APPEND %s {5+}\r\nhello extra\r\n" % box)
    assert w.until_tagged("i")[-1].startswith("i BAD")
    # a second message (MULTIAPPEND) is refused and nothing is stored
    w.send("j APPEND %s {5+}\r\nhello {5+}\r\nworld\r\n" % box)
    assert w.until_tagged("j")[-1].startswith("j NO [CANNOT]")
    # an over-long line after the message
    w.send("m APPEND %s {5+}\r\nhello%s\r\nn NOOP\r\n" % (box, "x" * 70000))
    assert w.until_tagged("m")[-1].startswith("m BAD [TOOBIG]")
    assert w.until_tagged("n")[-1].startswith("n OK")
    lines = w.command("k", "STATUS %s (MESSAGES)" % box)
    assert "MESSAGES 2" in lines[0], lines
    # APPEND with the mailbox name as a literal, then the message
    w.send("l APPEND {%d+}\r\n%s {%d+}\r\n" % (len(box), box, len(SIMPLE)))
    w.send(SIMPLE + b"\r\n")
    assert w.until_tagged("l")[-1].startswith("l OK [APPENDUID")
    w.send("z LOGOUT\r\n")
    w.until_tagged("z")


# ---- NAMESPACE, ENABLE, IDLE basics, errors ----

def test_namespace_enable_noop_check(imap, mail_server, tls_ctx):
    m = imap
    typ, data = m.namespace()
    assert typ == "OK" and data == [b'(("" "/")) NIL NIL'], data
    assert m.noop()[0] == "OK"
    assert m.check()[0] == "OK"
    w = Wire(mail_server["imaps"], tls_context=tls_ctx, timeout=30)
    w.line()
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    assert w.command("b", "ENABLE CONDSTORE X-UNKNOWN") == ["* ENABLED", "b OK ENABLE completed"]
    w.command("c", "SELECT INBOX")
    assert w.command("d", "ENABLE CONDSTORE")[-1].startswith("d BAD")  # before SELECT only


def test_commands_in_the_wrong_state(mail_server, tls_ctx):
    w = Wire(mail_server["imaps"], tls_context=tls_ctx, timeout=30)
    w.line()
    for i, cmd in enumerate(("SELECT INBOX", "LIST \"\" *", "APPEND INBOX {1+}\r\nx")):
        assert w.command("p%d" % i, cmd)[-1].startswith("p%d BAD" % i), cmd
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    for i, cmd in enumerate(("FETCH 1 (FLAGS)", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE",
                             "SEARCH ALL", "COPY 1 INBOX", "UID FETCH 1 FLAGS", "UNSELECT",
                             "CHECK", "MOVE 1 INBOX")):
        assert w.command("t%d" % i, cmd)[-1].startswith("t%d BAD" % i), cmd


def test_malformed_commands_after_login(mail_server, tls_ctx):
    w = Wire(mail_server["imaps"], tls_context=tls_ctx, timeout=30)
    w.line()
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    assert w.command("b", "SELECT INBOX")[-1].startswith("b OK")
    for i, bad in enumerate(["FETCH 1:* (BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19."
                             "20.21.22.23.24.25.26.27.28.29.30.31.32.33])",
                             "FETCH 1 BODY[HEADER.FIELDS ()]",
                             "FETCH * (BODY[]<4294967296.1>)",
                             "SEARCH (((((((",
                             "STORE 1:* FLAGS ((\\Seen))",
                             "UID BOGUS 1",
                             "LIST", "SELECT", "RENAME a",
                             "COPY 1 {3+}\r\nabc", "SEARCH CHARSET",
                             "FETCH 1:4294967296 FLAGS"]):
        lines = w.command("t%d" % i, bad)
        assert lines[-1].startswith("t%d BAD" % i) or lines[-1].startswith("t%d NO" % i), (
            bad, lines)
        w.command("r%d" % i, "NOOP")  # reset the bad-command count
    assert w.command("z", "NOOP")[-1].startswith("z OK")


def test_many_messages_fetched_in_batches(imap, mail_server):
    """FETCH 1:* over more than one batch of responses: every message once, in order, with
    bodies interleaved correctly."""
    m = imap
    count = 500
    first = deliver(mail_server, b"Subject: n0\r\n\r\n\r\n", folder=m.test_box)
    os.utime(first, (1700000000, 1700000000))
    new = os.path.join(postern.mailbox_dir(mail_server, JDOE, m.test_box), "new")
    owner = os.stat(new)
    for i in range(1, count):  # written straight into new/ (no fsync: nothing crashes here)
        path = os.path.join(new, "%d.M%dP1.batch" % (1700000000 + i, i))
        with open(path, "wb") as f:
            f.write(b"Subject: n%d\r\n\r\n%s\r\n" % (i, b"b" * (i % 3000)))
        os.chown(path, owner.st_uid, owner.st_gid)
        os.utime(path, (1700000000 + i, 1700000000 + i))
    typ, data = m.select(m.test_box)
    assert int(data[0]) == count
    typ, data = m.fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    assert typ == "OK"
    seen = 0
    for piece in data:
        if not isinstance(piece, tuple):
            continue
        if piece[0].startswith(b"%d (" % (seen + 1)):
            seen += 1
            assert piece[1] == b"Subject: n%d\r\n\r\n" % (seen - 1), piece
    assert seen == count
    texts = [p[1] for p in data if isinstance(p, tuple) and b"BODY[TEXT]" in p[0]]
    assert texts == [b"b" * (i % 3000) + b"\r\n" for i in range(count)]


def test_without_mailbox_root(slapd, make_server, tls_ctx):
    """Login works; every mailbox command says why it cannot."""
    d = postern.public_dir("posternd-nomail-")
    s = make_server(directory=d, global_extra=postern.directory_block(slapd, d))
    m = connect(s, tls_ctx)
    caps = m.capability()[1][0].decode().split()
    assert "IDLE" not in caps and "UIDPLUS" not in caps, caps
    for fn, args in ((m.select, ("INBOX",)), (m.list, ()), (m.create, ("x",)),
                     (m.status, ("INBOX", "(MESSAGES)")), (m.lsub, ())):
        typ, data = fn(*args)
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0] and b"MailboxRoot" in data[0], data
    typ, data = m.append("INBOX", None, None, SIMPLE)
    assert typ == "NO" and b"[UNAVAILABLE]" in data[0], data
    assert m.noop()[0] == "OK"
    m.logout()


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare(1) for a small private file system")
def test_full_disk_is_overquota(slapd, make_server, tls_ctx, monkeypatch, tmp_path):
    """MailboxRoot on a 3 MB tmpfs (a private mount namespace of posternd): an APPEND that does
    not fit is NO [OVERQUOTA], leaves nothing behind, and the mailbox goes on working."""
    d = postern.public_dir("posternd-full-")
    wrapper = tmp_path / "posternd-on-tmpfs"
    wrapper.write_text(
        "#!/bin/sh\nexec unshare -m sh -c 'mount -t tmpfs -o size=3m,mode=0700,uid=%d,gid=%d "
        "tmpfs %s/mail && exec %s \"$@\"' posternd \"$@\"\n"
        % (NOBODY[0], NOBODY[1], d, postern.binary()))
    wrapper.chmod(0o755)
    monkeypatch.setenv("POSTERND", str(wrapper))
    s = make_server(directory=d, mail=True,
                    global_extra=postern.directory_block(slapd, d))
    m = connect(s, tls_ctx)
    m.select("INBOX")
    small = append(m, "INBOX", SIMPLE)
    typ, data = m.append("INBOX", None, None, b"Subject: huge\r\n\r\n" + b"h" * 4000000)
    assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
    again = append(m, "INBOX", SIMPLE.replace(b"Body", b"Again"))
    typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    bodies = {int(re.search(rb"UID (\d+)", p[0]).group(1)): p[1]
              for p in data if isinstance(p, tuple)}
    assert bodies == {small: SIMPLE, again: SIMPLE.replace(b"Body", b"Again")}
    m.logout()


def test_autologout_timer_covers_idle(slapd, make_server, tls_ctx):
    d = postern.public_dir("posternd-idle-timeout-")
    s = make_server(directory=d, mail=True, imap_extra="AuthenticatedConnectionTimeout 2",
                    global_extra=postern.directory_block(slapd, d))
    w = Wire(s["imaps"], tls_context=tls_ctx, timeout=10)
    w.line()
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    for i in range(3):  # commands keep the session alive
        time.sleep(0.8)
        assert w.command("n%d" % i, "NOOP")[-1].startswith("n%d OK" % i)
    assert w.command("s", "SELECT INBOX")[-1].startswith("s OK")
    w.send("i IDLE\r\n")
    assert w.line().startswith("+ ")
    started = time.monotonic()
    assert w.line(timeout=5).startswith("* BYE Autologout")
    assert 1.5 < time.monotonic() - started < 4


def test_random_commands_do_not_break_the_server(mail_server, tls_ctx):
    """A thousand commands put together from pieces of real ones, valid or not, with and
    without literals: every one is answered, and the server is still there (under SANITIZE=1
    the lab also fails the test on any sanitizer report at stop)."""
    import random
    rng = random.Random(20260202)
    names = ["FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH", "COPY",
             "UID COPY", "MOVE", "UID MOVE", "EXPUNGE", "UID EXPUNGE", "LIST", "LSUB",
             "STATUS", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
             "NOOP", "CHECK", "NAMESPACE", "UNSELECT", "CLOSE", "ENABLE", "APPEND", "ID"]
    pieces = ["1", "*", "1:*", "2,4:6", "0", "4294967295", "$", "(FLAGS)", "BODY[]",
              "(BODY.PEEK[1.2.MIME]<0.10> ENVELOPE)", "(BODY[HEADER.FIELDS (FROM)])",
              "BODY[TEXT]<5.>", "+FLAGS", "FLAGS.SILENT", "(\\Seen $k)", "(\\Deleted)",
              "INBOX", '"INBOX"', '""', "*", "%", "&AOQ-", "&Jjo", '"a\\"b"', "(MESSAGES UNSEEN)",
              "ALL", "OR", "NOT", "HEADER", "FROM", "x", "CHARSET", "UTF-8", "BODY", "TEXT",
              "(", ")", "((", "[", "]", "{3+}\r\nabc", "{0+}\r\n", "\"01-Jan-2026 00:00:00 +0000\"",
              "SINCE", "1-Feb-2026", "LARGER", "99999999999999999999", "RETURN", "(MIN)",
              "CONDSTORE", "R%d" % rng.randrange(1000), "R1/sub"]
    w = Wire(mail_server["imaps"], tls_context=tls_ctx, timeout=30)
    w.line()
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    w.command("c", "CREATE R1")
    w.command("p", "APPEND R1 {%d+}\r\n%s" % (len(SIMPLE), SIMPLE.decode()))
    w.command("s", "SELECT R1")
    for i in range(1000):
        if i % 40 == 0:
            w.command("s%d" % i, "SELECT R1")
        cmd = rng.choice(names) + "".join(" " + rng.choice(pieces)
                                          for _ in range(rng.randrange(0, 5)))
        lines = w.command("t%d" % i, cmd)
        last = lines[-1]
        assert re.match(r"t%d (OK|NO|BAD) " % i, last), (cmd, lines)
        if "BAD" in last:
            w.command("r%d" % i, "NOOP")  # keep MaxBadCommands away
    assert w.command("z", "NOOP")[-1] == "z OK NOOP completed"


def test_append_framing_generated(mail_server, tls_ctx):
    """APPENDs with every kind of text around the message literal, pipelined with a NOOP each:
    every tag is answered once, in order, and exactly the well-formed ones store a message."""
    import random
    rng = random.Random(7)
    w = Wire(mail_server["imaps"], tls_context=tls_ctx, timeout=30)
    w.line()
    assert w.command("a", "LOGIN jdoe %s" % PW)[-1].startswith("a OK")
    box = "F%d" % time.monotonic_ns()
    assert w.command("c", "CREATE %s" % box)[-1].startswith("c OK")
    stored = 0
    before = ["", " (\\Seen)", ' "01-Feb-2026 10:00:00 +0000"', " (\\Flagged $x) "
              '"01-Feb-2026 10:00:00 +0000"', " (\\Bogus)", ' "bad date"', " ()", " NIL"]
    after = ["", "", "", " ", " x", " {3+}\r\nabc", "x" * 70000, " (\\Seen) {2+}\r\nab"]
    for i in range(150):
        pre, post = rng.choice(before), rng.choice(after)
        body = b"Subject: g%d\r\n\r\n" % i + b"q" * rng.randrange(0, 3000)
        target = box if rng.random() < 0.9 else box + "-missing"
        w.send(("t%d APPEND %s%s {%d+}\r\n" % (i, target, pre, len(body))).encode() + body +
               post.encode() + b"\r\nn%d NOOP\r\n" % i)
        last = w.until_tagged("t%d" % i)[-1]
        ok = pre not in (" (\\Bogus)", ' "bad date"', " NIL") and post == "" and target == box
        assert last.startswith("t%d OK [APPENDUID" % i) == ok, (pre, post, target, last)
        stored += ok
        assert w.until_tagged("n%d" % i)[-1].startswith("n%d OK" % i)
    lines = w.command("s", "STATUS %s (MESSAGES)" % box)
    assert "MESSAGES %d" % stored in lines[0], lines
