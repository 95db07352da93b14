"""Domain controllers from DNS SRV records (_ldap._tcp.dc._msdcs.<domain>, MS-ADTS 6.3.2.3).

A real DNS server (dnsmasq, from Debian) answers on a loopback address; the programs under
test (dirprobe, posternd) run in their own mount namespace whose /etc/resolv.conf points at
it, so the system's resolver configuration is never touched.
"""
import os
import random
import shutil
import socket
import subprocess
import time

import pytest

from tests.lab import daemon, ports, postern
from tests.integration.test_directory_client import Probe, _clean_env, dirprobe  # noqa: F401

# Port 53 of a loopback address of our own: random, so that two test runs (say, CI and a
# developer's) never meet.
DNS_ADDR = "127.53.%d.%d" % (random.randint(0, 255), random.randint(2, 254))
DEAD_DNS_ADDR = "127.54.%d.%d" % (random.randint(0, 255), random.randint(2, 254))
DC_NAME = "mail.example.test"   # in the lab slapd's certificate
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("dnsmasq"),
    reason="needs root, unshare and dnsmasq (make deps)")


def _udp_dns_answers(addr):
    # a query for the root's NS; any answer means dnsmasq is up
    query = bytes.fromhex("12340100000100000000000000000200 01".replace(" ", ""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(query, (addr, 53))
            return bool(s.recv(512))
        except OSError:
            return False


@pytest.fixture(scope="module")
def dns(slapd, tmp_path_factory):
    work = postern.public_dir("posternd-dns-")
    dead = ports.free_port()
    srv = "_ldap._tcp.dc._msdcs."
    argv = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--listen-address=" + DNS_ADDR, "--bind-interfaces", "--port=53",
            "--user=nobody", "--pid-file=" + os.path.join(work, "dnsmasq.pid"),
            "--log-queries", "--log-facility=-",
            # everything under .test is ours: names without records are NXDOMAIN
            "--local=/test/",
            # example.test: a dead DC first (priority 0), then the lab slapd (priority 10),
            # by a name in slapd's certificate ("localhost" will not do: libldap checks the
            # local host name instead of it)
            "--host-record=%s,127.0.0.1" % DC_NAME,
            "--srv-host=%sexample.test,%s,%d,0,100" % (srv, DC_NAME, dead),
            "--srv-host=%sexample.test,%s,%d,10,100" % (srv, DC_NAME, slapd.port),
            # gone.test: "." = decidedly not available (RFC 2782)
            "--srv-host=%sgone.test" % srv]
    log = os.path.join(work, "dnsmasq.log")
    proc = daemon.spawn(argv, log)
    try:
        daemon.wait_ready(proc, lambda: _udp_dns_answers(DNS_ADDR), "dnsmasq", log)
        resolv = os.path.join(work, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:1 attempts:1\n" % DNS_ADDR)
        dead_resolv = os.path.join(work, "resolv-dead.conf")
        with open(dead_resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:1 attempts:1\n" % DEAD_DNS_ADDR)
        os.chmod(work, 0o755)
        for p in (resolv, dead_resolv):
            os.chmod(p, 0o644)
        yield {"resolv": resolv, "dead_resolv": dead_resolv, "log": log, "dead_port": dead}
    finally:
        daemon.stop(proc)


def in_namespace(resolv, argv):
    """argv run with `resolv` as /etc/resolv.conf, in a private mount namespace."""
    script = 'mount --make-rprivate / && mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, resolv] + list(argv)


class NsProbe(Probe):
    def __init__(self, exe, slapd, pw_file, resolv):
        super().__init__(exe, slapd, pw_file)
        self.resolv = resolv

    def run_ns(self, domain, *command, resolv=None):
        argv = self.argv(uris=["-"])
        i = argv.index("-H")
        argv[i:i + 2] = ["-d", domain]
        done = subprocess.run(in_namespace(resolv or self.resolv, argv + list(command)),
                              capture_output=True, text=True, timeout=30, env=_clean_env())
        import json
        assert done.stdout, done.stderr
        return json.loads(done.stdout.splitlines()[0]), done.stderr


@pytest.fixture(scope="module")
def nsprobe(dirprobe, slapd, dns, tmp_path_factory):  # noqa: F811
    pw = tmp_path_factory.mktemp("dnssecret") / "bind.pw"
    pw.write_text(slapd.service_pw + "\n")
    return NsProbe(dirprobe, slapd, str(pw), dns["resolv"])


def test_domain_controllers_from_srv_records(nsprobe, slapd, dns):
    r, err = nsprobe.run_ns("example.test", "find", "(sAMAccountName=jdoe)")
    assert r["status"] == "OK" and r["n_matched"] == 1, (r, err)
    # the dead priority-0 DC was tried first, then the next one answered (StartTLS verified
    # against the SRV target's name)
    assert r["server"] == "ldap://%s:%d" % (DC_NAME, slapd.port)
    assert "directory: ldap://%s:%d: StartTLS: Can't contact" % (DC_NAME, dns["dead_port"]) in err
    with open(dns["log"]) as f:
        assert "_ldap._tcp.dc._msdcs.example.test" in f.read()


@pytest.mark.parametrize("domain,message", [
    ("nothing.test", "no such record"),
    ("gone.test", "no usable record"),
    ("bad..name", "is not a DNS domain name"),
])
def test_no_domain_controllers(nsprobe, domain, message):
    r, err = nsprobe.run_ns(domain, "naming")
    assert r["status"] == "NEW_FAILED" and message in r["error"], r


def test_dns_down_fails_in_bounded_time(nsprobe, dns):
    t0 = time.monotonic()
    r, err = nsprobe.run_ns("example.test", "naming", resolv=dns["dead_resolv"])
    assert r["status"] == "NEW_FAILED" and "no answer from the DNS servers" in r["error"], r
    assert time.monotonic() - t0 < 15


def test_posternd_without_uri_finds_the_dc(slapd, server_tls, tls_ctx, dns):
    import imaplib
    d = postern.public_dir("posternd-dns-")
    block = postern.directory_block(slapd, d, uris=[], extra="    Domain example.test")
    assert "URI" not in block
    s = postern.Posternd(server_tls, directory=d, global_extra=block)
    s.write_config()
    s.proc = daemon.spawn(in_namespace(dns["resolv"], [postern.binary(), "-f", "-c", s.conf]),
                          s.log)
    try:
        daemon.wait_ready(s.proc, s.ready, "posternd", s.log)
        m = imaplib.IMAP4_SSL("127.0.0.1", s["imaps"], ssl_context=tls_ctx)
        m.login("jdoe", "Demo-Pass-1")
        m.logout()
        ev = [e for e in s.audit_events() if e["event"] == "auth"][-1]
        assert ev["result"] == "allow" and ev["directory_server"] == \
            "ldap://%s:%d" % (DC_NAME, slapd.port)
    finally:
        s.stop()
