"""mutt, a real mail reader, against postern: it logs in over implicit TLS as a directory
user, lists the INBOX, opens a message (which marks it \\Seen on the server), deletes one and
expunges it on leaving. Driven through a pseudo-terminal, as a person would."""
import imaplib
import os
import pty
import re
import select
import shutil
import subprocess
import time
import uuid

import pytest

from tests.lab import ad, postern

PW = "Demo-Pass-1"
pytestmark = pytest.mark.skipif(shutil.which("mutt") is None, reason="mutt missing (make deps)")


class Terminal:
    def __init__(self, argv, env):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.screen = ""

    def read_until(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", "", self.screen)
            if re.search(pattern, text):
                return text
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    self.screen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        raise AssertionError("mutt never showed %r; screen:\n%s" % (pattern, self.screen[-3000:]))

    def keys(self, text):
        os.write(self.master, text.encode())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.master)


def test_mutt_reads_and_deletes_mail(slapd, server_tls, tls_ctx, test_ca, tmp_path):
    d = postern.public_dir("posternd-mutt-")
    s = postern.Posternd(server_tls, directory=d, mail=True,
                         global_extra=postern.directory_block(slapd, d))
    s.write_config()
    s.start()
    term = None
    try:
        key = str(uuid.UUID(bytes_le=ad.fixed_guid("jdoe")))
        # distinct dates: with sort=date-sent a tie would leave the order to the UIDs
        for subject, body, hour in (("Quarterly numbers", "The numbers are in.", 9),
                                    ("Lunch on Friday", "Pizza or sushi?", 10)):
            postern.deliver(s, key, "From: Anna Smith <anna.smith@example.test>\r\n"
                                    "To: John Doe <john.doe@example.test>\r\n"
                                    "Subject: %s\r\nDate: Sun, 22 Nov 2026 %02d:00:00 +0000\r\n"
                                    "Message-ID: <%s@example.test>\r\n\r\n%s\r\n"
                                    % (subject, hour, uuid.uuid4(), body))
        rc = tmp_path / "muttrc"
        rc.write_text(
            'set imap_user="jdoe"\nset imap_pass="%s"\n'
            'set folder="imaps://localhost:%d/"\nset spoolfile="+INBOX"\n'
            'set ssl_ca_certificates_file="%s"\nset ssl_force_tls=yes\n'
            'set header_cache=""\nset message_cachedir=""\nset sort=date-sent\n'
            'set quit=yes\nset delete=yes\nset move=no\nset mark_old=no\n'
            'set confirmappend=no\nset wait_key=no\nset pager_stop=yes\n'
            % (PW, s["imaps"], test_ca["cert"]))
        env = dict(os.environ, TERM="vt100", LINES="40", COLUMNS="120", HOME=str(tmp_path),
                   LANG="C.UTF-8")
        term = Terminal(["mutt", "-n", "-F", str(rc)], env)
        term.read_until(r"Lunch on Friday")
        screen = term.read_until(r"Quarterly numbers")
        assert "Anna Smith" in screen
        # open the oldest message: its body appears, and the server marks it seen
        term.keys("1\r")       # jump to message 1
        term.keys("\r")        # display it
        term.read_until(r"The numbers are in\.")
        term.keys("i")         # back to the index
        term.keys("2\r")
        term.keys("d")         # delete message 2
        term.keys("q")         # quit: with delete=yes the deletion is expunged
        deadline = time.monotonic() + 20
        while term.proc.poll() is None and time.monotonic() < deadline:
            try:
                term.read_until(r"\Z", timeout=0.5)
            except AssertionError:
                pass
        assert term.proc.poll() == 0, term.screen[-2000:]
    finally:
        if term:
            term.close()
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        m.login("jdoe", PW)
        m.select("INBOX")
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [d[1].decode() for d in data if isinstance(d, tuple)]
        flags = [d[0].decode() for d in data if isinstance(d, tuple)]
        assert len(subjects) == 1 and "Quarterly numbers" in subjects[0], subjects
        assert "\\Seen" in flags[0], flags
        m.logout()
        logins = [e for e in s.audit_events() if e["event"] == "auth" and e["login"] == "jdoe"]
        assert logins and logins[0]["result"] == "allow" and logins[0]["tls"]
    finally:
        s.stop()
