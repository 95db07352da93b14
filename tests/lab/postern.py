# Run posternd in the foreground with a generated configuration, for tests and the demo.
"""A Posternd object writes a postern.conf into its own directory, starts the
binary named by $POSTERND (default build/posternd) with -f, waits until every
listener accepts, and stops it by PID.

When the tests run as root, posternd must switch to an unprivileged user;
the directory is made traversable and the key readable by that user so that
SIGHUP reloads (which run unprivileged) can re-read them.
"""
import os
import signal
import subprocess
import tempfile
import time

from . import daemon, ports

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def binary():
    return os.environ.get("POSTERND", os.path.join(ROOT, "build", "posternd"))


def public_dir(prefix="posternd-"):
    """A fresh directory posternd can read after dropping privileges (pytest's tmp_path sits
    under a 0700 directory, which `nobody` cannot enter)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def quote(value):
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


class Listener:
    def __init__(self, name, protocol, tls, port=None, address="127.0.0.1", extra=""):
        self.name, self.protocol, self.tls = name, protocol, tls
        self.address = address
        self.port = port or ports.free_port(address if address != "*" else "127.0.0.1")
        self.extra = extra

    def render(self):
        return ("listener %s {\n    Protocol %s\n    Address %s\n    Port %d\n    TLS %s\n%s}\n"
                % (self.name, self.protocol, self.address, self.port, self.tls, self.extra))


def standard_listeners(extra=None):
    """The four listeners of the demo contract, on free ports."""
    extra = extra or {}
    return [Listener("imap", "imap", "starttls", extra=extra.get("imap", "")),
            Listener("imaps", "imap", "implicit", extra=extra.get("imaps", "")),
            Listener("pop3", "pop3", "starttls", extra=extra.get("pop3", "")),
            Listener("pop3s", "pop3", "implicit", extra=extra.get("pop3s", ""))]


# Every server a test session started: the last test greps their logs for secrets.
ALL_SERVERS = []


class Posternd:
    def __init__(self, tls_files, listeners=None, directory=None, global_extra="",
                 imap_extra="", pop3_extra="", user="nobody", log_level="debug",
                 mail=False):
        self.tls = tls_files
        self.listeners = listeners if listeners is not None else standard_listeners()
        self.dir = directory or tempfile.mkdtemp(prefix="posternd-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "postern.conf")
        self.log = os.path.join(self.dir, "posternd.log")
        self.audit = os.path.join(self.dir, "audit.log")
        # posternctl sessions/kick: one socket per server (not /run/postern/control, which
        # servers of tests running side by side would share); posternd creates run/ for User
        self.control_socket = os.path.join(os.path.abspath(self.dir), "run", "control")
        if len(self.control_socket) > 100:  # sun_path: 107 bytes
            self.control_socket = os.path.join(public_dir("pctl-"), "run", "control")
        self.global_extra, self.imap_extra, self.pop3_extra = global_extra, imap_extra, pop3_extra
        self.user = user if os.geteuid() == 0 else None
        self.log_level = log_level
        # mail=True: accounts' mailboxes under <dir>/mail/<key> (MailboxRoot), owned by User
        self.mail_root = os.path.join(self.dir, "mail") if mail else None
        if self.mail_root:
            os.makedirs(self.mail_root, exist_ok=True)
            if self.user:
                import pwd
                pw = pwd.getpwnam(self.user)
                os.chown(self.mail_root, pw.pw_uid, pw.pw_gid)
        self.proc = None
        ALL_SERVERS.append(self)
        self.write_config()

    def __getitem__(self, name):
        """The port of the listener called `name`."""
        for l in self.listeners:
            if l.name == name:
                return l.port
        raise KeyError(name)

    def render(self):
        head = []
        if self.user:
            head.append("User %s" % self.user)
        head += ["LogLevel %s" % self.log_level,
                 "IOThreads 2",
                 "TLSCertificateFile %s" % quote(self.tls.cert),
                 "TLSKeyFile %s" % quote(self.tls.key),
                 "AuditLog %s" % quote(self.audit),
                 "ControlSocket %s" % quote(self.control_socket)]
        if self.mail_root:
            head.append("MailboxRoot %s" % quote(self.mail_root + "/%k"))
        head += [self.global_extra,
                 "imap {\n%s\n}" % self.imap_extra,
                 "pop3 {\n%s\n}" % self.pop3_extra]
        return "\n".join(head) + "\n" + "".join(l.render() for l in self.listeners)

    def write_config(self, text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.render())
        os.chmod(self.conf, 0o644)
        # Test keys only: readable by the unprivileged user so that SIGHUP can reload them.
        for path in (self.tls.cert, self.tls.key):
            os.chmod(path, 0o644)
        os.chmod(os.path.dirname(self.tls.key), 0o755)

    def start(self, timeout=10.0):
        self.proc = daemon.spawn([binary(), "-f", "-c", self.conf], self.log)
        daemon.wait_ready(self.proc, self.ready, "posternd", self.log, timeout=timeout)
        return self

    def ready(self):
        return "info: ready:" in self.log_text() and self.all_listening()

    def all_listening(self):
        return all(ports.tcp_accepts(l.address if l.address != "*" else "127.0.0.1", l.port)
                   for l in self.listeners)

    def wait_no_sessions(self, timeout=5.0):
        """Wait until every connection accepted so far (the readiness probes too) has closed,
        judged from the debug log: caps tests must not count connections they did not open."""
        import re
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            opened = set(re.findall(r"conn (\d+): \S+ port \d+ on listener", text))
            closed = set(re.findall(r"conn (\d+) from \S+ closed$", text, re.M))
            # each listener was probed once by start(); its accept may not be logged yet
            seen = len(opened) + len(re.findall(r"listener \S+: refused ", text))
            if seen >= len(self.listeners) and opened <= closed:
                return
            time.sleep(0.02)
        raise AssertionError("sessions still open: %s" % sorted(opened - closed))

    @property
    def pid(self):
        return self.proc.pid

    def reload(self, wait_for="configuration reloaded", timeout=5.0):
        """SIGHUP, then wait until the log says the reload finished (or failed)."""
        before = self.log_text().count(wait_for)
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(wait_for) > before:
                return
            time.sleep(0.02)
        raise AssertionError("no %r in the log after SIGHUP:\n%s" % (wait_for, self.log_text()[-3000:]))

    def stop(self, timeout=10.0, check=True):
        """SIGTERM and wait. With `check`, a dirty exit or a sanitizer report in the log fails
        the test that owns this server (make check SANITIZE=1 relies on it)."""
        status = daemon.stop(self.proc, timeout=timeout)
        if check:
            text = self.log_text()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                assert marker not in text, "sanitizer report in %s:\n%s" % (self.log, text[-5000:])
            assert status == 0, "posternd exited with %s; log:\n%s" % (status, text[-3000:])
        return status

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def audit_events(self):
        import json
        try:
            with open(self.audit, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def mailbox_dir(server, key, folder="INBOX"):
    """The Maildir of `folder` of the account whose rename-proof key is `key` (Maildir++:
    INBOX is the account's root, other folders .Name below it)."""
    root = os.path.join(server.mail_root, key)
    return root if folder.upper() == "INBOX" else os.path.join(root, "." + folder.replace("/", "."))


_deliveries = 0


def deliver(server, key, message, folder="INBOX"):
    """Deliver like an MTA: write into tmp/, then rename into new/ (owned by User)."""
    import socket
    maildir = mailbox_dir(server, key, folder)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    # Maildir's unique name (time, microseconds, pid, a counter): never repeated, even
    # for many deliveries within one second
    global _deliveries
    _deliveries += 1
    now = time.time_ns()
    name = "%d.M%dP%dQ%d.%s" % (now // 10**9, (now // 1000) % 10**6, os.getpid(), _deliveries,
                                socket.gethostname())
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(message if isinstance(message, bytes) else message.encode())
        f.flush()
        os.fsync(f.fileno())
    if server.user:
        import pwd
        pw = pwd.getpwnam(server.user)
        for path in (tmp,) + tuple(os.path.join(maildir, sub) for sub in ("tmp", "new", "cur")):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        d = maildir
        while d != server.mail_root and d.startswith(server.mail_root):
            os.chown(d, pw.pw_uid, pw.pw_gid)
            d = os.path.dirname(d)
    # mtimes in delivery order, one microsecond apart, so that "oldest first" is well defined
    # (set before the rename: a running server may move the file on at once)
    os.utime(tmp, ns=(now, now + _deliveries * 1000))
    final = os.path.join(maildir, "new", name)
    os.rename(tmp, final)
    return final


def sanitized(binary_path):
    """Built with AddressSanitizer (make SANITIZE=1)? Then memory figures are ASan's, not the
    program's: tests keep their checks of behaviour and skip the ones of resident memory."""
    try:
        with open(binary_path, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


def check_config(path):
    """posternd -t: returns (exit status, combined output)."""
    r = subprocess.run([binary(), "-t", "-c", path], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def directory_block(slapd, directory, uris=None, tls="starttls", logins="FailureDelay 0s",
                    extra=""):
    """postern.conf text for a directory block pointing at a lab Slapd, plus a logins block.

    The CA and the service password are copied into `directory` (world-readable): posternd
    opens LDAP connections after it dropped privileges."""
    import shutil
    secret = os.path.join(directory, "ldap.secret")
    with open(secret, "w") as f:
        f.write(slapd.service_pw + "\n")
    os.chmod(secret, 0o600)  # read at start-up, as root
    if uris is None:
        uris = [slapd.uri]
    lines = ["directory {"]
    if uris:  # none: the domain controllers come from DNS (Domain in `extra`)
        lines.append("    URI %s" % " ".join(uris))
    lines += ["    BaseDN %s" % quote(slapd.base_dn),
             "    BindDN %s" % quote(slapd.service_dn),
             "    BindPasswordFile %s" % quote(secret),
             "    TLS %s" % tls,
             "    NetworkTimeout 2s",
             "    OperationTimeout 3s"]
    if slapd.ca_cert:
        ca = os.path.join(directory, "ldap-ca.pem")
        shutil.copy(slapd.ca_cert, ca)
        os.chmod(ca, 0o644)
        lines.append("    CAFile %s" % quote(ca))
    lines.append(extra)
    lines.append("}")
    if "Penalty" not in logins:
        # Tests log in from 127.0.0.1 many times with wrong names: no brute-force penalty
        # unless a test asks for one.
        logins += "\n    PenaltyAfter 0"
    lines.append("logins {\n    %s\n}" % logins)
    return "\n".join(lines) + "\n"
