# TLS on the listeners with real clients (Python ssl, gnutls-cli, openssl s_client).
import os
import socket
import ssl
import subprocess
import time

import pytest

from tests.lab.wire import Wire, client_context


def test_gnutls_cli_implicit_tls(server, test_ca):
    r = subprocess.run(["gnutls-cli", "--x509cafile", test_ca["cert"], "-p", str(server["imaps"]),
                        "localhost"], input="a1 LOGOUT\r\n", capture_output=True, text=True,
                       timeout=20)
    assert "* OK [CAPABILITY IMAP4rev1" in r.stdout, r.stdout + r.stderr
    assert "a1 OK LOGOUT completed" in r.stdout


def converse(argv, command, expect, timeout=15):
    """Run an interactive client: send `command` once it is connected, read until `expect`."""
    import selectors
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while expect.encode() not in out and time.monotonic() < deadline:
            if not sent and b"verify return:1" in out:
                time.sleep(0.2)  # let the handshake finish before typing
                p.stdin.write(command.encode())
                p.stdin.flush()
                sent = True
            if sel.select(timeout=0.2):
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
    finally:
        p.kill()
        p.wait()
    return out.decode("utf-8", "replace")


@pytest.mark.parametrize("proto,listener,command,expect", [
    ("imap", "imap", "a1 CAPABILITY\r\n", "a1 OK CAPABILITY completed"),
    ("pop3", "pop3", "CAPA\r\n", "IMPLEMENTATION postern")])
def test_openssl_s_client_starttls(server, test_ca, proto, listener, command, expect):
    out = converse(["openssl", "s_client", "-quiet", "-verify_return_error", "-CAfile",
                    test_ca["cert"], "-verify_hostname", "localhost", "-starttls", proto,
                    "-connect", "127.0.0.1:%d" % server[listener]], command, expect)
    assert expect in out, out
    after = out[out.index("verify return:1"):]
    if proto == "imap":
        assert "AUTH=PLAIN" in after and "LOGINDISABLED" not in after.split("* CAPABILITY")[-1]
    else:
        assert "\nUSER" in after and "STLS" not in after


def test_tls_below_1_2_is_refused(server, test_ca):
    r = subprocess.run(["gnutls-cli", "--x509cafile", test_ca["cert"], "-p", str(server["imaps"]),
                        "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0", "localhost"],
                       input="", capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "* OK" not in r.stdout


def test_tls_versions_offered(server, test_ca):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_context(test_ca["cert"])
        ctx.minimum_version = ctx.maximum_version = version
        with Wire(server["imaps"], tls_context=ctx) as w:
            assert w.line().startswith("* OK")
            assert w.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                        ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


def test_alpn_cross_protocol_is_refused(server, test_ca):
    """ALPACA: a client that asks for another protocol (http/1.1) gets no session."""
    with pytest.raises(ssl.SSLError):
        Wire(server["imaps"], tls_context=client_context(test_ca["cert"], alpn=["http/1.1"]))
    with Wire(server["imaps"], tls_context=client_context(test_ca["cert"], alpn=["imap"])) as w:
        assert w.sock.selected_alpn_protocol() == "imap"
        assert w.line().startswith("* OK")
    with Wire(server["pop3s"], tls_context=client_context(test_ca["cert"], alpn=["pop3", "imap"])) as w:
        assert w.sock.selected_alpn_protocol() == "pop3"
        assert w.line().startswith("+OK")


def test_handshake_timeout(make_server):
    s = make_server(global_extra="TLSHandshakeTimeout 2")
    sock = socket.create_connection(("127.0.0.1", s["imaps"]))
    sock.settimeout(8)
    t0 = time.monotonic()
    assert sock.recv(100) == b""  # closed without a handshake
    assert 1.5 < time.monotonic() - t0 < 6
    sock.close()
    # a half-finished handshake (ClientHello fragment) is timed out too
    sock = socket.create_connection(("127.0.0.1", s["imaps"]))
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    sock.settimeout(8)
    t0 = time.monotonic()
    assert sock.recv(100) == b""
    assert time.monotonic() - t0 < 6
    sock.close()


def test_garbage_instead_of_handshake_closes(server):
    sock = socket.create_connection(("127.0.0.1", server["imaps"]))
    sock.sendall(b"a1 CAPABILITY\r\n")
    sock.settimeout(5)
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        data = b""  # closed with our bytes unread
    # GnuTLS may answer with an alert record; never with IMAP text
    assert b"OK" not in data and b"CAPABILITY" not in data
    sock.close()
    # the server is fine afterwards
    with Wire(server["imap"]) as w:
        assert w.line().startswith("* OK")
