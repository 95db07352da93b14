# A raw line client for protocol tests that real client libraries refuse to produce
# (pipelining before STARTTLS, oversized lines, broken literals, half-open handshakes).
import socket
import ssl
import time


class Wire:
    def __init__(self, port, host="127.0.0.1", tls_context=None, source=None, timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self, timeout=5.0):
        """One line without CRLF; raises TimeoutError or EOFError."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete line; have %r" % self.buf)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as exc:
                raise TimeoutError("no complete line; have %r" % self.buf) from exc
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def until_tagged(self, tag, timeout=5.0):
        """All lines up to and including the one starting with `tag `."""
        lines = []
        while True:
            l = self.line(timeout)
            lines.append(l)
            if l.startswith(tag + " "):
                return lines

    def command(self, tag, text, timeout=5.0):
        self.send("%s %s\r\n" % (tag, text))
        return self.until_tagged(tag, timeout)

    def starttls(self, context):
        """Wrap the socket after the server's go-ahead; pending cleartext must be empty."""
        assert self.buf == b"", "cleartext left over before the handshake: %r" % self.buf
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def closed(self, timeout=5.0):
        """True once the server has closed the connection (reading whatever precedes EOF)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, ssl.SSLError, OSError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def nothing_within(self, seconds):
        """True if no byte arrives within `seconds` (and the connection stays open)."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        if chunk:
            self.buf += chunk
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def client_context(ca_cert, alpn=None, max_version=None):
    ctx = ssl.create_default_context(cafile=ca_cert)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    return ctx
