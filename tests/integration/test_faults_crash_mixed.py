"""kill -9 of posternd under mixed load, three times in a row: IMAP APPENDs and EXPUNGEs for
one user, POP3 downloads with DELE + QUIT for another, and an MTA delivering into both
INBOXes. After every restart each mailbox passes its invariants:

- no loss: every acknowledged APPEND and every delivered file is there, once, unchanged;
- no resurrection: nothing an acknowledged EXPUNGE or POP3 QUIT removed comes back;
- UIDs stable: a message keeps its UID (and UIDVALIDITY stays) across the crashes.
- POP3: DELEs of a session the crash cut before its QUIT delete nothing; those of a session
  whose QUIT got no answer may be done or not, and what is gone then stays gone.
"""
import imaplib
import os
import poplib
import random
import re
import threading
import time
import uuid

from tests.lab import ad, postern

PW = "Demo-Pass-1"
JDOE = str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))
ANNA = str(uuid.UUID(bytes_le=ad.fixed_guid("asmith")))


def imap(server, ctx):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=30)
    m.login("jdoe", PW)
    return m


def imap_state(server, ctx, login):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=30)
    m.login(login, PW)
    typ, data = m.select("INBOX")
    validity = m.untagged_responses["UIDVALIDITY"][0]
    typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    found = {}
    for piece in data:
        if isinstance(piece, tuple):
            uid = int(re.search(rb"UID (\d+)", piece[0]).group(1))
            assert uid not in found, "UID %d twice" % uid
            found[uid] = piece[1]
    m.logout()
    return validity, found


def test_kill9_under_mixed_imap_pop3_and_delivery_load(make_server, slapd, tls_ctx):
    d = postern.public_dir("posternd-crashmix-")
    s = make_server(directory=d, mail=True, global_extra=postern.directory_block(slapd, d))
    rnd = random.Random(20261122)
    delivered = {JDOE: set(), ANNA: set()}   # bodies (unique) delivered by the "MTA"
    appended = {}                            # uid -> body, acknowledged APPENDs (jdoe)
    expunged = set()                         # UIDs whose EXPUNGE was acknowledged (jdoe)
    expunge_inflight = set()                 # sent, no answer yet
    popped_gone = set()                      # bodies POP3 QUIT removed (asmith)
    pending_pop = set()                      # DELE'd, QUIT not acknowledged yet
    quit_sent = [False]                      # ... and QUIT sent (else nothing may go)
    known_uids = {}                          # body -> uid once seen (UID stability)
    history = {}                             # body -> what happened to it (for a failure)
    serial = [0]

    def body(tag):
        serial[0] += 1
        text = "\r\n".join("x" * 70 for _ in range(rnd.randint(1, 40)))
        return ("Subject: %s %d\r\nMessage-ID: <%s@x>\r\n\r\n%s\r\n"
                % (tag, serial[0], uuid.uuid4(), text)).encode()

    validity0 = None
    for round_no in range(3):
        stop = threading.Event()

        def mta():
            while not stop.is_set():
                for key in (JDOE, ANNA):
                    b = body("mta")
                    postern.deliver(s, key, b)
                    delivered[key].add(b)
                    history[b] = ["delivered in round %d" % round_no]
                time.sleep(0.01)

        def appender():
            try:
                m = imap(s, tls_ctx)
                while not stop.is_set():
                    b = body("app")
                    typ, data = m.append("INBOX", None, None, b)
                    uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
                    appended[uid] = b
            except Exception:
                pass

        def expunger():
            # removes only messages it appended, so MTA deliveries must all survive
            try:
                m = imap(s, tls_ctx)
                m.select("INBOX")
                while not stop.is_set():
                    present = {int(u) for u in m.uid("SEARCH", "ALL")[1][0].split()}
                    mine = sorted((present & set(appended)) - expunged)
                    if len(mine) < 3:
                        time.sleep(0.02)
                        continue
                    victim = str(rnd.choice(mine[:-1]))
                    expunge_inflight.add(int(victim))   # gone or not if the server dies now
                    m.uid("STORE", victim, "+FLAGS.SILENT", "(\\Deleted)")
                    typ, _ = m._simple_command("UID", "EXPUNGE", victim)
                    if typ == "OK":
                        expunged.add(int(victim))
                    expunge_inflight.discard(int(victim))
            except Exception:
                pass

        def popper():
            try:
                while not stop.is_set():
                    p = poplib.POP3_SSL("127.0.0.1", s["pop3s"], context=tls_ctx, timeout=30)
                    p.user("asmith@example.test")
                    p.pass_(PW)
                    n = len(p.list()[1])
                    session = serial[0]
                    for i in range(1, min(n, 3) + 1):
                        lines = p.retr(i)[1]
                        got = b"\r\n".join(lines) + b"\r\n"
                        pending_pop.add(got)
                        history.setdefault(got, []).append(
                            "RETR %d of %d in round %d, session %d" % (i, n, round_no, session))
                        p.dele(i)
                    quit_sent[0] = True
                    p.quit()   # +OK: the deletions are done
                    for got in pending_pop:
                        history[got].append("QUIT +OK, session %d" % session)
                    popped_gone.update(pending_pop)
                    pending_pop.clear()
                    quit_sent[0] = False
            except Exception:
                pass

        threads = [threading.Thread(target=f) for f in (mta, appender, expunger, popper)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(1.0, 2.5))
        os.kill(s.pid, 9)
        s.proc.wait()
        stop.set()
        for t in threads:
            t.join(30)
        s.proc = None
        s.start()

        validity, jdoe_box = imap_state(s, tls_ctx, "jdoe")
        if validity0 is None:
            validity0 = validity
        assert validity == validity0, "UIDVALIDITY changed"
        for uid, b in appended.items():
            if uid in expunge_inflight and uid not in jdoe_box:
                expunged.add(uid)               # the EXPUNGE was done, its answer lost
            if uid not in expunged:
                assert jdoe_box.get(uid) == b, "acknowledged APPEND uid %d lost" % uid
        expunge_inflight.clear()
        assert not (expunged & set(jdoe_box)), "expunged UIDs back: %s" % (expunged & set(jdoe_box))
        in_box = set(jdoe_box.values())
        assert len(in_box) == len(jdoe_box), "a message twice in jdoe's INBOX"
        lost = [b for b in delivered[JDOE] if b not in in_box]
        assert not lost, "%d delivered messages lost in jdoe's INBOX" % len(lost)
        for uid, b in jdoe_box.items():
            assert known_uids.setdefault(b, uid) == uid, "a message changed its UID"

        _, anna_box = imap_state(s, tls_ctx, "asmith@example.test")
        anna_bodies = set(anna_box.values())
        assert len(anna_bodies) == len(anna_box), "a message twice in asmith's INBOX"
        assert not (popped_gone & anna_bodies), "POP3-deleted mail came back"
        # RETR'd and DELE'd in a session whose QUIT got no +OK: gone or present (the crash
        # may have come after the UPDATE state, before the answer), and present when no QUIT
        # was sent (RFC 1939: a session that ends otherwise deletes nothing); everything else
        # delivered must be there
        if not quit_sent[0]:
            early = pending_pop - anna_bodies
            assert not early, "%d messages gone without a QUIT: %s" % (
                len(early), [(b.split(b"\r\n")[0], history.get(b)) for b in early])
        lost = [b for b in delivered[ANNA]
                if b not in anna_bodies and b not in popped_gone and b not in pending_pop]
        assert not lost, "%d delivered messages lost in asmith's INBOX after round %d: %s" % (
            len(lost), round_no, [(b.split(b"\r\n")[0], history.get(b)) for b in lost])
        for b in pending_pop:
            history[b].append("%s after the crash of round %d" % (
                "present" if b in anna_bodies else "gone", round_no))
        # gone now: gone for good (must not come back); present: still to be downloaded
        popped_gone.update(pending_pop - anna_bodies)
        pending_pop.clear()
        quit_sent[0] = False
    assert appended and expunged and popped_gone, (len(appended), len(expunged),
                                                   len(popped_gone))
