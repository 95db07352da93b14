"""posternctl sessions and kick: the live sessions of a running posternd through its control
socket, with the socket's file permission (and SO_PEERCRED) as the access control.

Real services only: a posternd logged in against the lab slapd, real TLS clients, posternctl
run as root and as `nobody` (setpriv), SIGHUP, SIGTERM, kill -9 and a restart.
"""
import grp
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import time

import pytest

from tests.lab import daemon, postern
from tests.lab.wire import Wire

PW = "Demo-Pass-1"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# posternd runs as `daemon`, so that `nobody` is somebody else (neither its user nor its group)
USER = "daemon"
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def posternctl():
    path = os.environ.get("POSTERNCTL") or os.path.join(REPO, "build", "posternctl")
    if not os.path.exists(path):
        pytest.skip("posternctl not built")
    return path


def ctl(server, *args, prefix=()):
    return subprocess.run(list(prefix) + [posternctl(), "-c", server.conf] + list(args),
                          capture_output=True, text=True, timeout=30)


def sessions(server, prefix=()):
    done = ctl(server, "sessions", "--format", "json", prefix=prefix)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["sessions"]


def local_port(wire):
    return wire.sock.getsockname()[1]


def wait_sessions(server, ports, timeout=5.0):
    """The sessions once exactly the connections on these client ports are open (the probes of
    start() and connections ended a moment ago may still be closing)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sessions(server)
        if sorted(s["client_port"] for s in found) == sorted(ports):
            return {s["client_port"]: s for s in found}
        if time.monotonic() > deadline:
            raise AssertionError("want client ports %s, have %s" % (sorted(ports), found))
        time.sleep(0.05)


def imaps_login(server, tls_ctx, login, tag="a1"):
    w = Wire(server["imaps"], tls_context=tls_ctx)
    assert w.line().startswith("* OK")
    assert w.command(tag, "LOGIN %s %s" % (login, PW))[-1].startswith(tag + " OK"), login
    return w


def pop3s_login(server, tls_ctx, login):
    w = Wire(server["pop3s"], tls_context=tls_ctx)
    assert w.line().startswith("+OK")
    w.send("USER %s\r\n" % login)
    assert w.line().startswith("+OK")
    w.send("PASS %s\r\n" % PW)
    assert w.line().startswith("+OK"), login
    return w


def new_server(slapd, server_tls, user=USER, start=True, extra=""):
    d = postern.public_dir("posternd-sess-")
    s = postern.Posternd(server_tls, directory=d, user=user,
                         global_extra=postern.directory_block(slapd, d) + extra)
    s.write_config()
    if start:
        s.start()
    return s


@pytest.fixture(scope="module")
def server(slapd, server_tls):
    if os.geteuid() != 0:
        pytest.skip("needs root: posternd switches to %s, posternctl runs as nobody" % USER)
    s = new_server(slapd, server_tls)
    yield s
    s.stop()


@pytest.fixture
def fresh(slapd, server_tls):
    """A server of the test's own (restarts, kill -9), stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    made = []

    def factory(**kwargs):
        s = new_server(slapd, server_tls, **kwargs)
        made.append(s)
        return s

    yield factory
    for s in made:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()


def test_sessions_lists_exactly_the_open_sessions(server, tls_ctx):
    jdoe = imaps_login(server, tls_ctx, "jdoe")
    pop = Wire(server["pop3"])
    assert pop.line().startswith("+OK")
    anna = imaps_login(server, tls_ctx, "asmith@example.test")
    try:
        found = wait_sessions(server, [local_port(jdoe), local_port(pop), local_port(anna)])
        j = found[local_port(jdoe)]
        assert (j["protocol"], j["listener"], j["client"]) == ("imap", "imaps", "127.0.0.1")
        assert j["tls"]["version"] in ("TLS1.2", "TLS1.3") and j["tls"]["cipher"]
        assert (j["state"], j["account"], j["mechanism"]) == ("authenticated", "jdoe",
                                                              "LOGIN-COMMAND")
        assert j["account_dn"].lower().startswith("cn=john doe,")
        assert j["connected_at"].endswith("Z") and j["login_at"] >= j["connected_at"]
        assert j["bytes_in"] > 0 and j["bytes_out"] > 0
        p = found[local_port(pop)]
        assert (p["protocol"], p["listener"], p["tls"], p["state"]) == ("pop3", "pop3", None,
                                                                       "pre-auth")
        assert p["account"] is None and p["mechanism"] is None and p["login_at"] is None
        a = found[local_port(anna)]
        assert (a["state"], a["account"]) == ("authenticated", "asmith")
        assert len({j["id"], p["id"], a["id"]}) == 3
        # the table says the same, one line per session and a summary
        table = ctl(server, "sessions")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split()[:3] == ["ID", "PROTOCOL", "LISTENER"]
        row = next(l for l in lines if l.split()[0] == str(j["id"]))
        assert "jdoe" in row and "TLS1." in row and "authenticated" in row
        row = next(l for l in lines if l.split()[0] == str(p["id"]))
        assert "pre-auth" in row and " none " in row
        assert lines[-1] == "3 sessions, 2 logged in"
        # every command is logged with the peer's uid
        assert "control socket: uid 0 (pid " in server.log_text()
    finally:
        for w in (jdoe, pop, anna):
            w.sock.close()


def test_kick_by_id_ends_that_session_only(server, tls_ctx):
    jdoe = imaps_login(server, tls_ctx, "jdoe")
    pop = Wire(server["pop3"])
    assert pop.line().startswith("+OK")
    anna = imaps_login(server, tls_ctx, "asmith@example.test")
    try:
        found = wait_sessions(server, [local_port(jdoe), local_port(pop), local_port(anna)])
        victim = found[local_port(jdoe)]["id"]
        done = ctl(server, "kick", str(victim))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ended session %d: imap from 127.0.0.1:" % victim)
        assert "account jdoe" in done.stdout
        # the client hears the protocol's goodbye, then the connection closes
        assert jdoe.line().startswith("* BYE ")
        assert jdoe.closed()
        assert "conn %d from 127.0.0.1: ended by posternctl kick (uid 0): account jdoe" % victim \
            in server.log_text()
        # the others go on
        wait_sessions(server, [local_port(pop), local_port(anna)])
        assert anna.command("a2", "NOOP")[-1].startswith("a2 OK")
        pop.send("CAPA\r\n")
        assert pop.line().startswith("+OK")
        # the id is gone now
        again = ctl(server, "kick", str(victim))
        assert again.returncode == 3 and "no session %d" % victim in again.stderr
    finally:
        for w in (jdoe, pop, anna):
            w.sock.close()


def test_kick_pop3_session_says_err(server, tls_ctx):
    pop = pop3s_login(server, tls_ctx, "jdoe")
    try:
        s = wait_sessions(server, [local_port(pop)])[local_port(pop)]
        assert (s["protocol"], s["state"], s["account"]) == ("pop3", "authenticated", "jdoe")
        assert ctl(server, "kick", str(s["id"])).returncode == 0
        assert pop.line().startswith("-ERR ")
        assert pop.closed()
    finally:
        pop.sock.close()


def test_kick_account_ends_every_session_of_it(server, tls_ctx):
    j1 = imaps_login(server, tls_ctx, "jdoe")
    j2 = pop3s_login(server, tls_ctx, "EXAMPLE\\jdoe")
    anna = imaps_login(server, tls_ctx, "asmith@example.test")
    pre = Wire(server["imap"])
    assert pre.line().startswith("* OK")
    try:
        wait_sessions(server, [local_port(w) for w in (j1, j2, anna, pre)])
        done = ctl(server, "kick", "--account", "JDoe")  # as the directory compares: any case
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("ended session") == 2, done.stdout
        assert j1.line().startswith("* BYE ") and j1.closed()
        assert j2.line().startswith("-ERR ") and j2.closed()
        left = wait_sessions(server, [local_port(anna), local_port(pre)])
        dn = left[local_port(anna)]["account_dn"]
        # by DN too; nothing of anyone else's
        done = ctl(server, "kick", "--account", dn)
        assert done.returncode == 0 and done.stdout.count("ended session") == 1, done.stdout
        assert anna.line().startswith("* BYE ")
        assert pre.command("a1", "NOOP")[-1].startswith("a1 OK")
        # no session of that account: nothing to do, not an error
        done = ctl(server, "kick", "--account", "jdoe")
        assert done.returncode == 0 and "no session of account jdoe" in done.stdout
    finally:
        for w in (j1, j2, anna, pre):
            w.sock.close()


def test_bad_arguments(server):
    for args in (["kick"], ["kick", "abc"], ["kick", "0"], ["kick", "1", "--account", "x"],
                 ["kick", "--account"], ["sessions", "--format", "xml"], ["sessions", "-x"]):
        done = ctl(server, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)


def test_socket_file_owner_group_and_mode(server):
    st = os.lstat(server.control_socket)
    pw = pwd.getpwnam(USER)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    # the directory it made for the socket belongs to User, so that User can remove it at stop
    d = os.stat(os.path.dirname(server.control_socket))
    assert (d.st_uid, stat.S_IMODE(d.st_mode)) == (pw.pw_uid, 0o755)


def test_permission_is_the_socket_mode(server):
    # nobody: neither User nor its group -> the kernel refuses the connect
    done = ctl(server, "sessions", prefix=AS_NOBODY)
    assert done.returncode == 3
    assert "permission denied on %s" % server.control_socket in done.stderr
    # a member of User's group may (0660)
    gid = grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_gid
    member = ["setpriv", "--reuid=65534", "--regid=%d" % gid, "--clear-groups"]
    assert isinstance(sessions(server, prefix=member), list)
    assert "control socket: uid 65534 (pid " in server.log_text()
    # and as a supplementary group
    member = ["setpriv", "--reuid=65534", "--regid=65534", "--groups=%d" % gid]
    assert isinstance(sessions(server, prefix=member), list)
    # a mode loosened by mistake opens nothing: SO_PEERCRED says who connects
    os.chmod(server.control_socket, 0o666)
    try:
        done = ctl(server, "kick", "--account", "jdoe", prefix=AS_NOBODY)
        assert done.returncode == 3
        assert "permission denied" in done.stderr
        assert "control socket: refused uid 65534" in server.log_text()
    finally:
        os.chmod(server.control_socket, 0o660)


def raw_request(path, data, shut=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    s.close()
    return json.loads(answer)


def test_protocol_on_the_socket(server):
    path = server.control_socket
    assert raw_request(path, b"SESSIONS\r\n")["ok"] is True
    assert raw_request(path, b"sessions", shut=True)["ok"] is True  # no line end, then EOF
    for bad in (b"HELLO\n", b"KICK\n", b"KICK 12x\n", b"KICK 99999999999999999999\n",
                b"KICK-ACCOUNT \n", b"KICK-ACCOUNT a\x01b\n", b"SESSIONS\x00\n"):
        r = raw_request(path, bad)
        assert r["ok"] is False and r["error"], bad
    # a request line is bounded
    r = raw_request(path, b"KICK-ACCOUNT " + b"x" * 5000 + b"\n")
    assert r == {"ok": False, "error": "request too long"}
    # a client that says nothing is dropped after the deadline, and others are served meanwhile
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(path)
    assert raw_request(path, b"SESSIONS\n")["ok"] is True
    idle.settimeout(15)
    t0 = time.monotonic()
    assert idle.recv(100) == b""
    assert 8 < time.monotonic() - t0 < 14
    idle.close()


def test_sighup_keeps_the_socket(fresh, tls_ctx):
    s = fresh()
    before = os.lstat(s.control_socket).st_ino
    w = imaps_login(s, tls_ctx, "jdoe")
    try:
        s.reload()
        assert os.lstat(s.control_socket).st_ino == before
        found = wait_sessions(s, [local_port(w)])
        assert found[local_port(w)]["account"] == "jdoe"
    finally:
        w.sock.close()
    # a changed ControlSocket waits for the restart, with a warning
    s.global_extra += "ControlSocket %s\n" % os.path.join(s.dir, "run", "other")
    s.write_config()
    s.reload()
    assert "ControlSocket changes take effect at the next restart" in s.log_text()
    assert not os.path.exists(os.path.join(s.dir, "run", "other"))
    assert raw_request(s.control_socket, b"SESSIONS\n")["ok"] is True


def test_sigterm_removes_the_socket_and_a_restart_brings_it_back(fresh, tls_ctx):
    s = fresh()
    path = s.control_socket
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    s.stop()
    assert not os.path.exists(path)
    done = ctl(s, "sessions")
    assert done.returncode == 3 and "posternd is not running" in done.stderr
    s.start()
    w = imaps_login(s, tls_ctx, "jdoe")
    try:
        assert wait_sessions(s, [local_port(w)])[local_port(w)]["account"] == "jdoe"
    finally:
        w.sock.close()


def test_stale_socket_after_kill_is_replaced(fresh):
    s = fresh()
    path = s.control_socket
    os.kill(s.pid, signal.SIGKILL)
    s.proc.wait()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    done = ctl(s, "sessions")
    assert done.returncode == 3 and "not running" in done.stderr
    s.start()
    assert "removed a stale socket" in s.log_text()
    assert sessions(s) is not None


def test_refuses_to_start_on_a_path_that_is_not_a_socket(fresh):
    s = fresh(start=False)
    os.makedirs(os.path.dirname(s.control_socket))
    with open(s.control_socket, "w") as f:
        f.write("precious\n")
    with pytest.raises(daemon.LabError):
        s.start(timeout=5)
    assert "exists and is not a socket" in s.log_text()
    with open(s.control_socket) as f:
        assert f.read() == "precious\n"


def test_refuses_a_socket_another_server_answers_on(fresh):
    first = fresh()
    second = fresh(start=False, extra="ControlSocket %s\n" % first.control_socket)
    with pytest.raises(daemon.LabError):
        second.start(timeout=5)
    assert "another server is answering on it" in second.log_text()
    assert sessions(first) is not None


def test_control_socket_none(fresh):
    s = fresh(extra="ControlSocket none\n")
    assert not os.path.exists(s.control_socket)
    done = ctl(s, "sessions")
    assert done.returncode == 3 and "ControlSocket none" in done.stderr
