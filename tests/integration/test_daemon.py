# posternd as a process: -t, privileges, SIGHUP reload (config and certificates), SIGTERM, daemon mode.
import os
import shutil
import signal
import ssl
import subprocess
import time

import pytest

from tests.lab import daemon, ports, postern, tls as tls_lab
from tests.lab.wire import Wire, client_context


def test_check_config_ok_and_errors_name_file_and_line(tmp_path, server_tls):
    s = postern.Posternd(server_tls, directory=str(tmp_path))
    status, out = postern.check_config(s.conf)
    assert status == 0 and "configuration OK (4 listeners)" in out
    bad = tmp_path / "bad.conf"
    bad.write_text("LogLevel info\nMaxConnections lots\n")
    status, out = postern.check_config(str(bad))
    assert status == 1
    assert "bad.conf:2: MaxConnections: 'lots' is not a number" in out
    bad.write_text(s.render().replace("TLSKeyFile", "TLSKeyFile \"/nonexistent/key.pem\"\n#"))
    status, out = postern.check_config(str(bad))
    assert status == 1 and "TLSKeyFile /nonexistent/key.pem: No such file" in out
    assert "bad.conf:" in out


def test_runs_as_unprivileged_user(server):
    if os.geteuid() != 0:
        pytest.skip("privilege drop needs root")
    with open("/proc/%d/status" % server.pid) as f:
        status = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    uids = [status["Uid"].split(), status["Gid"].split()]
    assert uids[0] == ["65534"] * 4 and uids[1] == ["65534"] * 4  # nobody / nogroup
    # no capability left in any set, and no supplementary group of root's
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    assert status["Groups"].split() in ([], ["65534"]), status["Groups"]
    # PR_SET_DUMPABLE 0: another process of the same user cannot read its memory or attach
    assert os.stat("/proc/%d/mem" % server.pid).st_uid == 0


def test_root_without_user_refuses(tmp_path, server_tls):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    s = postern.Posternd(server_tls, directory=str(tmp_path), user=None)
    s.user = None
    s.write_config()
    r = subprocess.run([postern.binary(), "-f", "-c", s.conf], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1 and "refusing to serve as root" in r.stderr


def peer_cert(port, ca):
    ctx = client_context(ca)
    with Wire(port, tls_context=ctx) as w:
        w.line()
        return w.sock.getpeercert(binary_form=True)


def test_sighup_reloads_certificate_without_dropping_sessions(make_server, test_ca):
    import tempfile
    d = tempfile.mkdtemp(prefix="postern-reload-")  # the reload runs as nobody: not under 0700 dirs
    os.chmod(d, 0o755)
    cert1, key1 = tls_lab.make_server_cert(d, test_ca["cert"], test_ca["key"], stem="one")
    files = tls_lab.TlsFiles(test_ca["cert"], test_ca["key"], os.path.join(d, "live.pem"),
                             os.path.join(d, "live.key"))
    shutil.copy(cert1, files.cert)
    shutil.copy(key1, files.key)
    s = make_server(tls_files=files)
    tls_ctx = client_context(test_ca["cert"])
    first = peer_cert(s["imaps"], test_ca["cert"])

    # sessions opened before the reload, one on implicit TLS and one cleartext
    old_tls = Wire(s["imaps"], tls_context=tls_ctx)
    old_tls.line()
    old_plain = Wire(s["pop3"])
    old_plain.line()

    cert2, key2 = tls_lab.make_server_cert(d, test_ca["cert"], test_ca["key"], stem="two")
    shutil.copy(cert2, files.cert)
    shutil.copy(key2, files.key)
    s.write_config()
    s.reload()

    second = peer_cert(s["imaps"], test_ca["cert"])
    assert second != first
    assert ssl.DER_cert_to_PEM_cert(second).strip() == open(cert2).read().strip()
    # the old sessions carry on
    assert old_tls.command("a1", "NOOP") == ["a1 OK NOOP completed"]
    old_plain.send("NOOP\r\n")
    assert old_plain.line() == "+OK"
    # and STARTTLS on the old cleartext session gets the new certificate
    old_plain.send("STLS\r\n")
    assert old_plain.line() == "+OK Begin TLS negotiation"
    old_plain.starttls(tls_ctx)
    assert old_plain.sock.getpeercert(binary_form=True) == second
    old_tls.close()
    old_plain.close()


def test_sighup_applies_new_listener_and_settings(make_server):
    s = make_server()
    held = Wire(s["imap"])
    held.line()
    extra = postern.Listener("imap-extra", "imap", "none")
    s.listeners.append(extra)
    s.imap_extra = 'Banner "Reloaded banner"\nLoginType plaintext-login'
    s.write_config()
    s.reload()
    with Wire(extra.port) as w:
        greeting = w.line()
        assert greeting.endswith("] Reloaded banner") and "LOGINDISABLED" not in greeting
    # the session from before keeps the rules it started with
    caps = held.command("a1", "CAPABILITY")[0]
    assert "LOGINDISABLED" in caps
    held.close()


def test_sighup_with_broken_config_keeps_running(make_server):
    s = make_server()
    good = s.render()
    s.write_config(good + "\nlistener broken {\n    Port 0\n")
    s.reload(wait_for="reload failed")
    assert "reload failed, keeping the running configuration" in s.log_text()
    with Wire(s["imap"]) as w:
        assert w.line().startswith("* OK")
    s.write_config(good)


def test_sigterm_says_goodbye_and_exits(make_server, tls_ctx):
    s = make_server()
    imap = Wire(s["imaps"], tls_context=tls_ctx)
    imap.line()
    pop = Wire(s["pop3"])
    pop.line()
    t0 = time.monotonic()
    os.kill(s.pid, signal.SIGTERM)
    assert imap.line() == "* BYE [UNAVAILABLE] Server shutting down"
    assert pop.line() == "-ERR [SYS/TEMP] Server shutting down"
    assert imap.closed() and pop.closed()
    assert s.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 6
    for l in s.listeners:
        assert not ports.tcp_accepts("127.0.0.1", l.port)
    assert "stopped" in s.log_text()


def test_daemon_mode_and_pid_file(tmp_path, server_tls):
    s = postern.Posternd(server_tls, directory=str(tmp_path))
    os.chmod(tmp_path, 0o755)
    pidfile = tmp_path / "posternd.pid"
    s.global_extra = "PidFile %s" % pidfile
    s.write_config()
    # without -f the parent returns once the daemon serves
    r = subprocess.run([postern.binary(), "-c", s.conf], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    try:
        with Wire(s["imap"]) as w:
            assert w.line().startswith("* OK")
    finally:
        os.kill(pid, signal.SIGTERM)
    assert ports.wait_closed("127.0.0.1", s["imap"], timeout=10)


def test_daemon_mode_reports_bind_failure(tmp_path, server_tls):
    import socket
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    s = postern.Posternd(server_tls, directory=str(tmp_path),
                         listeners=[postern.Listener("imap", "imap", "none", port=port)])
    r = subprocess.run([postern.binary(), "-c", s.conf], capture_output=True, text=True, timeout=20)
    blocker.close()
    assert r.returncode == 1
    assert "cannot listen on 127.0.0.1 port %d" % port in r.stderr


def test_version_and_usage():
    r = subprocess.run([postern.binary(), "-v"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("posternd ")
    r = subprocess.run([postern.binary(), "-x"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_failed_reload_leaves_every_listener_serving(make_server):
    import socket
    s = make_server()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    s.listeners.append(postern.Listener("taken", "imap", "none", port=blocker.getsockname()[1]))
    good = [l for l in s.listeners if l.name != "taken"]
    s.write_config()
    s.reload(wait_for="reload failed")
    assert "cannot listen on 127.0.0.1 port %d" % blocker.getsockname()[1] in s.log_text()
    blocker.close()
    ctx = client_context(s.tls.ca_cert)
    for l in good:
        with Wire(l.port, tls_context=ctx if l.tls == "implicit" else None) as w:
            assert w.line()[:3] in ("* O", "+OK")


def test_reload_drops_removed_listener_at_once(make_server):
    s = make_server()
    held = Wire(s["pop3"])
    held.line()
    removed = [l for l in s.listeners if l.name == "pop3"][0]
    s.listeners.remove(removed)
    s.write_config()
    s.reload()
    assert ports.wait_closed("127.0.0.1", removed.port, timeout=2)
    held.send("NOOP\r\n")  # its session goes on under the old rules
    assert held.line() == "+OK"
    held.close()


def test_relative_paths_are_relative_to_the_configuration(tmp_path, server_tls):
    import tempfile
    d = tempfile.mkdtemp(prefix="postern-rel-")
    os.chmod(d, 0o755)
    shutil.copy(server_tls.cert, os.path.join(d, "c.pem"))
    shutil.copy(server_tls.key, os.path.join(d, "k.pem"))
    files = tls_lab.TlsFiles(server_tls.ca_cert, server_tls.ca_key, os.path.join(d, "c.pem"),
                             os.path.join(d, "k.pem"))
    s = postern.Posternd(files, directory=d)
    s.write_config(s.render().replace(os.path.join(d, "c.pem"), "c.pem")
                   .replace(os.path.join(d, "k.pem"), "k.pem")
                   .replace('"%s"' % s.audit, "audit-rel.log"))
    status, out = postern.check_config(s.conf)  # run from another directory
    assert status == 0, out
    s.start()
    try:
        with Wire(s["imap"]) as w:
            w.line()
            w.command("a1", "LOGIN x y")
        s.reload()
        assert os.path.exists(os.path.join(d, "audit-rel.log"))
    finally:
        s.stop()


def test_make_install_stages_binary_man_pages_config_and_unit(tmp_path):
    build = os.path.dirname(postern.binary())
    r = subprocess.run(["make", "-s", "-C", postern.ROOT, "install", "DESTDIR=%s" % tmp_path,
                        "PREFIX=/usr", "BUILD=%s" % build], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in ("usr/sbin/posternd", "usr/share/man/man5/postern.conf.5",
              "usr/share/man/man8/posternd.8", "etc/postern/postern.conf",
              "usr/lib/systemd/system/postern.service"):
        assert (tmp_path / f).is_file(), f
    unit = (tmp_path / "usr/lib/systemd/system/postern.service").read_text()
    assert "ExecStart=/usr/sbin/posternd -f -c /etc/postern/postern.conf" in unit
    # the sample configuration parses; only its certificate is missing here
    status, out = postern.check_config(str(tmp_path / "etc/postern/postern.conf"))
    assert status == 1 and "TLSCertificateFile /etc/postern/tls/" in out, out
