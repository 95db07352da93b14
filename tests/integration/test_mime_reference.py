# src/mime against Dovecot 2.3: every sample in tests/data/mime/ goes into the Maildir of a
# private Dovecot on 127.0.0.1, and its FETCH answers (ENVELOPE, BODY, BODYSTRUCTURE,
# RFC822.SIZE, BODY[section], HEADER.FIELDS, partial fetches) and SEARCH BODY results must be
# what tests/tools/mimeprobe.c prints for the same file, byte for byte.
"""The probe is built here with cc against libpostern.a, as test_directory_client.py builds
dirprobe: $MIMEPROBE_LIB, the build directory of $POSTERND, or build/. Differences from Dovecot
that we keep on purpose are listed in KNOWN_DIFFERENCES and docs/mime.md; for those our answer
is asserted separately."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from tests.lab import tools

from tests.lab.daemon import LabError, log_tail, spawn, stop, wait_ready
from tests.lab.ports import free_port, port_in_use

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "tests", "data", "mime")
SAMPLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(DATA, "*.eml")))
DOVECOT = "/usr/sbin/dovecot"

SECTIONS = ["", "HEADER", "TEXT", "1", "1.MIME", "1.1", "1.2", "1.2.1", "1.2.2.MIME", "2",
            "2.MIME", "2.HEADER", "2.TEXT", "2.1", "2.1.MIME", "2.1.1", "2.2", "3", "3.MIME",
            "1.HEADER", "1.TEXT", "1.1.MIME", "1.1.1",
            "HEADER.FIELDS (FROM SUBJECT DATE X-NONE)", "HEADER.FIELDS.NOT (FROM RECEIVED TO)",
            "2.HEADER.FIELDS (SUBJECT FROM)", "1.HEADER.FIELDS.NOT (DATE)"]
PARTIALS = [("", 0, 20), ("", 100, 7), ("TEXT", 7, 30), ("1", 3, 5), ("2", 0, 1000000),
            ("HEADER", 5000, 10)]
SEARCHES = [("alternative.eml", "CAFÉ"), ("alternative.eml", "crème brûlée"),
            ("alternative.eml", "epilogue"), ("rfc2047.eml", "voilà"),
            ("rfc2047.eml", "joins this line"), ("eight_bit.eml", "KÖLN"),
            ("eight_bit.eml", "naïve café"), ("rfc822_attachment.eml", "HTML version"),
            ("nested.eml", "inner plain"), ("mixed_attachment.eml", "invoice attached"),
            ("plain_crlf.eml", "five lines"), ("plain_lf.eml", "not there")]

# (sample, item) -> why Dovecot's answer is not ours (then docs/mime.md explains it and a test
# below asserts ours). Empty: on every sample here we send what Dovecot 2.3.19 sends.
KNOWN_DIFFERENCES = {
}


@pytest.fixture(scope="module")
def mimeprobe(tmp_path_factory):
    return tools.build_tool("mimeprobe", tmp_path_factory.mktemp("mimeprobe"), "MIMEPROBE_LIB")


def probe(exe, sample, *args):
    done = subprocess.run([exe, os.path.join(DATA, sample)] + list(args), capture_output=True)
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")
    return done.stdout


def _user(*names):
    for name in names:
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    return None


class Dovecot:
    """A private dovecot (imap only, plaintext LOGIN, static passdb/userdb, one Maildir)
    in the foreground, stopped by PID."""

    def __init__(self, workdir, samples):
        self.workdir, self.samples = str(workdir), samples
        self.port = free_port()
        self._proc = None

    def start(self):
        if os.geteuid() != 0 or not os.path.exists(DOVECOT):
            pytest.skip("Dovecot reference needs root and dovecot-imapd")
        login = _user("dovenull", "nobody")
        internal = _user("dovecot", "nobody")
        mail_user = internal
        if login is None or internal is None:
            pytest.skip("no unprivileged user for Dovecot")
        base = self.workdir
        os.chmod(base, 0o755)  # the mail user walks into home/
        home = os.path.join(base, "home")
        maildir = os.path.join(home, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        # UIDs follow the file names, so sample i is UID i + 1
        for i, sample in enumerate(self.samples):
            shutil.copy(os.path.join(DATA, sample),
                        os.path.join(maildir, "cur", "%010d.M%dP1.postern:2," % (1700000000 + i, i)))
        pw = pwd.getpwnam(mail_user)
        for root, dirs, files in os.walk(home):
            for name in dirs + files + [""]:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
        self.log = os.path.join(base, "dovecot.log")
        conf = os.path.join(base, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""base_dir = {base}/run
state_dir = {base}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = {login}
default_internal_user = {internal}
first_valid_uid = 1
mail_location = maildir:{maildir}
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={pw.pw_gid} home={home}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
""")
        self._proc = spawn([DOVECOT, "-F", "-c", conf], os.path.join(base, "stdout.log"))
        wait_ready(self._proc, lambda: port_in_use("127.0.0.1", self.port), "dovecot", self.log)
        return self

    def stop(self):
        stop(self._proc)
        self._proc = None


@pytest.fixture(scope="module")
def imap():
    import imaplib
    # not under pytest's tmp dir: that one is 0700 and the mail user must reach the Maildir
    workdir = tempfile.mkdtemp(prefix="postern-dovecot-")
    dovecot = Dovecot(workdir, SAMPLES).start()
    try:
        conn = imaplib.IMAP4("127.0.0.1", dovecot.port)
        conn.login("tester", "secret")
        typ, data = conn.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == len(SAMPLES), log_tail(dovecot.log)
        yield conn
        conn.logout()
    except (OSError, LabError) as exc:
        raise AssertionError("%s\n%s" % (exc, log_tail(dovecot.log)))
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def raw_fetch(conn, uid, item):
    """The bytes of one FETCH item value as Dovecot sent them (literals kept as {n}\\r\\n...)."""
    typ, data = conn.uid("FETCH", str(uid), "(%s)" % item)
    assert typ == "OK", data
    raw = b""
    for piece in data:
        if isinstance(piece, tuple):
            raw += piece[0] + b"\r\n" + piece[1]
        else:
            raw += piece
    return raw


def item_value(raw, name):
    """The value after `NAME ` in `n (UID x NAME value)`."""
    start = raw.index(name.encode() + b" ") + len(name) + 1
    assert raw.endswith(b")")
    value = raw[start:-1]
    if value.endswith(b" UID %s" % raw.split(b"UID ")[1].split(b" ")[0]):
        value = value[:value.rindex(b" UID ")]
    return value


def section_bytes(raw):
    """The content of the BODY[...] literal (or quoted empty string) in a FETCH answer."""
    rest = raw[raw.index(b"]") + 1:]
    if rest.startswith(b"<"):
        rest = rest[rest.index(b">") + 1:]
    rest = rest[1:]
    if rest.startswith(b'""') or rest.startswith(b"NIL"):
        return b""
    assert rest.startswith(b"{"), raw
    size = int(rest[1:rest.index(b"}")])
    body = rest[rest.index(b"}\r\n") + 3:]
    return body[:size]


def uid_of(sample):
    return SAMPLES.index(sample) + 1


def normalised(sample):
    with open(os.path.join(DATA, sample), "rb") as f:
        data = f.read()
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("sample", SAMPLES)
def test_whole_message_and_size(imap, mimeprobe, sample):
    raw = raw_fetch(imap, uid_of(sample), "BODY.PEEK[] RFC822.SIZE")
    assert b"RFC822.SIZE %d" % len(normalised(sample)) in raw  # the mailbox holds the sample
    # NUL cannot be sent in a literal: Dovecot and we send 0x80 in its place
    sent = normalised(sample).replace(b"\0", b"\x80")
    assert section_bytes(raw) == sent == probe(mimeprobe, sample, "fetch", "")
    assert int(probe(mimeprobe, sample, "size")) == len(normalised(sample))


@pytest.mark.parametrize("item", ["ENVELOPE", "BODYSTRUCTURE", "BODY"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_structure_items(imap, mimeprobe, sample, item):
    theirs = item_value(raw_fetch(imap, uid_of(sample), item), item)
    ours = probe(mimeprobe, sample, item.lower())
    if (sample, item) in KNOWN_DIFFERENCES:
        assert ours != theirs, "Dovecot now agrees: drop the known difference"
        return
    assert ours == theirs


@pytest.mark.parametrize("sample", SAMPLES)
def test_sections(imap, mimeprobe, sample):
    mismatches = []
    for section in SECTIONS:
        theirs = section_bytes(raw_fetch(imap, uid_of(sample), "BODY.PEEK[%s]" % section))
        ours = probe(mimeprobe, sample, "fetch", section)
        if ours != theirs:
            mismatches.append((section, theirs, ours))
    assert mismatches == []


@pytest.mark.parametrize("sample", SAMPLES)
def test_partial_fetches(imap, mimeprobe, sample):
    for section, origin, count in PARTIALS:
        item = "BODY.PEEK[%s]<%d.%d>" % (section, origin, count)
        theirs = section_bytes(raw_fetch(imap, uid_of(sample), item))
        assert probe(mimeprobe, sample, "fetch", section, str(origin), str(count)) == theirs, item


@pytest.mark.parametrize("sample,needle", SEARCHES)
def test_search_body(imap, mimeprobe, sample, needle):
    imap.literal = needle.encode()
    typ, data = imap.uid("SEARCH", "CHARSET", "UTF-8", "BODY")
    assert typ == "OK", data
    theirs = uid_of(sample) in [int(u) for u in data[0].split()]
    ours = probe(mimeprobe, sample, "contains", needle).strip() == b"1"
    assert ours == theirs


# ---- our answers where we differ from Dovecot on purpose ----

def test_eight_bit_parameters_sent_as_written(mimeprobe):
    grusse = "Grüße.pdf".encode()
    ours = probe(mimeprobe, "eight_bit_params.eml", "bodystructure")
    assert b'("name" {%d}\r\n%s)' % (len(grusse), grusse) in ours
    assert b"{10}\r\ncaf\xc3\xa9 menu" in ours
    assert b'("attachment" ("filename" {%d}\r\n%s))' % (len(grusse), grusse) in ours


def test_decoded_headers_for_search(mimeprobe):
    assert probe(mimeprobe, "rfc2047.eml", "decoded", "subject").decode() == \
        "Größenwahn — ein Testà la carte\n"  # RFC 2047 §6.2: blanks between words go
    assert probe(mimeprobe, "rfc2047.eml", "decoded", "FROM").decode() == \
        "André François <andre@example.fr>\n"
    assert "José Núñez" in probe(mimeprobe, "rfc2047.eml", "decoded", "To").decode()
    assert probe(mimeprobe, "plain_lf.eml", "decoded", "X-Missing") == b""
