# A throwaway MIT Kerberos KDC for realm EXAMPLE.TEST on loopback, with postern's service keytab.
"""Usage:

    with Kdc(tmpdir) as kdc:
        kdc.kinit("jdoe", "Demo-Pass-1", tmpdir / "cc")     # CompletedProcess
        env = kdc.env()          # KRB5_CONFIG, KRB5_KTNAME, KRB5CCNAME, ...

Nothing outside `workdir` is read or written: private krb5.conf and kdc.conf
(KRB5_CONFIG / KRB5_KDC_PROFILE), database, stash, keytab, logs, ccache and
replay cache. The KDC listens on 127.0.0.1:PORT over UDP and TCP.
"""
import os
import shutil
import signal
import time

from . import daemon, ports
from .daemon import LabError

PASSWORD = "Demo-Pass-1"
REALM = "EXAMPLE.TEST"
ENCTYPES = ("aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96")
DEFAULT_USERS = ("jdoe", "asmith", "Administrator", "dadmin")
# In the KDC too, so GSSAPI tests see what AD's KDC does for a disabled
# account: no ticket ("client's credentials have been revoked").
DEFAULT_DISABLED_USERS = ("disabled1",)
SERVICES = ("imap", "pop")     # RFC 3501 and RFC 5034 GSSAPI service names


def _tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        package = {"krb5kdc": "krb5-kdc", "kdb5_util": "krb5-kdc",
                   "kadmin.local": "krb5-admin-server"}.get(name, "krb5-user")
        raise LabError("%s not found: apt-get install %s" % (name, package))
    return path


class Kdc(daemon.LabDaemon):
    """One krb5kdc instance with a fresh realm database."""

    realm = REALM

    def __init__(self, workdir, port=None, service_host="mail.example.test", host="127.0.0.1",
                 users=DEFAULT_USERS, disabled_users=DEFAULT_DISABLED_USERS, password=PASSWORD):
        """
        service_host  besides imap/localhost and pop/localhost, the keytab holds
                      imap/<service_host> and pop/<service_host>
        users         principals created with `password`
        disabled_users  created too, then -allow_tix (the KDC refuses them)
        """
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.host = host
        self.port = port or ports.free_port(host, udp=True)
        self.service_host = service_host
        self.users = tuple(users)
        self.disabled_users = tuple(disabled_users)
        self.password = password
        self.krb5_conf = os.path.join(self.workdir, "krb5.conf")
        self.kdc_conf = os.path.join(self.workdir, "kdc.conf")
        self.keytab = os.path.join(self.workdir, "service.keytab")
        self.ccache = os.path.join(self.workdir, "ccache")
        self.log_path = os.path.join(self.workdir, "kdc.log")
        self.pid = None
        self.setup_seconds = None     # database + principals + keytab
        self.startup_seconds = None   # krb5kdc start to accepting
        self._proc = None

    @property
    def service_principals(self):
        hosts = ["localhost"]
        if self.service_host and self.service_host != "localhost":
            hosts.append(self.service_host)
        return ["%s/%s@%s" % (svc, h, self.realm) for h in hosts for svc in SERVICES]

    # ----------------------------------------------------------- lifecycle --

    def start(self, fresh=True):
        """fresh=False restarts on the database of the last run, on the same port (a KDC
        coming back after a crash: the keys in keytabs made before stay valid)."""
        if self._proc is not None:
            raise LabError("krb5kdc already started (pid %d)" % self.pid)
        krb5kdc = _tool("krb5kdc")
        os.makedirs(os.path.join(self.workdir, "rcache"), exist_ok=True)
        for old_log in (self.log_path, os.path.join(self.workdir, "krb5kdc.out")):
            if os.path.exists(old_log):
                os.unlink(old_log)
        self._write_configs()
        t0 = time.monotonic()
        if fresh:
            self._create_realm()
        t1 = time.monotonic()
        # -n: stay in the foreground, so the PID we hold is the KDC's.
        self._proc = daemon.spawn([krb5kdc, "-n", "-r", self.realm,
                                   "-P", os.path.join(self.workdir, "krb5kdc.pid")],
                                  os.path.join(self.workdir, "krb5kdc.out"), env=self.env())
        self.pid = self._proc.pid
        try:
            # Waiting for TCP is enough: the UDP socket was bound by then in every
            # check (tests/lab: port_in_use(udp=True)), and MIT clients fall back
            # to TCP anyway.
            daemon.wait_ready(self._proc, lambda: ports.tcp_accepts(self.host, self.port),
                              "krb5kdc", self.log_path)
        except BaseException:
            self.stop()
            raise
        self.setup_seconds, self.startup_seconds = t1 - t0, time.monotonic() - t1
        return self

    def kill(self):
        """SIGKILL (a crash: no goodbye on any socket) and reap; start(fresh=False) brings the
        same realm back on the same port."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            self._proc = None

    def stop(self, timeout=5.0, remove=False):
        # a SIGSTOPped KDC (a hung one, in fault tests) must get the SIGTERM too
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)
        super().stop(timeout, remove)



    # ------------------------------------------------------------- clients --

    def env(self, ccache=None, base=None):
        """Environment for Kerberos clients and acceptors (postern) using this realm."""
        env = dict(os.environ if base is None else base)
        env.update({
            "KRB5_CONFIG": self.krb5_conf,
            "KRB5_KDC_PROFILE": self.kdc_conf,
            "KRB5CCNAME": "FILE:" + os.fspath(ccache or self.ccache),
            "KRB5_KTNAME": "FILE:" + self.keytab,
            # The acceptor's replay cache would otherwise go to /var/tmp.
            "KRB5RCACHEDIR": os.path.join(self.workdir, "rcache"),
        })
        return env

    def add_keys(self, principals, keytab):
        """Create principals with random keys and export them into `keytab` (a new file).

        For services and accounts that log in with a keytab, e.g. slapd's ldap/<host> or
        postern's own directory account."""
        commands = ["addprinc -randkey %s" % p for p in principals]
        commands.append("ktadd -k %s -e %s %s" % (
            keytab, ",".join("%s:normal" % e for e in ENCTYPES), " ".join(principals)))
        done = daemon.run([_tool("kadmin.local"), "-r", self.realm], env=self.env(),
                          input=("\n".join(commands) + "\n").encode(), what="kadmin.local")
        output = done.stdout.decode() + done.stderr.decode()
        if "error" in output.lower() or not os.path.exists(keytab):
            raise LabError("kadmin.local reported a problem:\n" + output)
        return keytab

    def kinit(self, principal, password, ccache_path=None, check=False):
        """Real kinit with the password on stdin; returns the CompletedProcess.

        A failed kinit (returncode != 0) raises only if check=True.
        """
        ccache = os.fspath(ccache_path or self.ccache)
        return daemon.run([_tool("kinit"), "-c", "FILE:" + ccache, principal],
                          env=self.env(ccache), input=(password + "\n").encode(), check=check,
                          what="kinit " + principal)

    def klist(self, ccache_path=None):
        """Principals of the tickets in a ccache (klist output lines)."""
        ccache = os.fspath(ccache_path or self.ccache)
        done = daemon.run([_tool("klist"), "-c", "FILE:" + ccache], env=self.env(ccache),
                          check=False)
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else ""

    def keytab_entries(self, keytab=None):
        """[(principal, enctype)] in the keytab, via klist -k -e."""
        done = daemon.run([_tool("klist"), "-k", "-e", keytab or self.keytab], env=self.env(),
                          what="klist -k")
        entries = []
        for line in done.stdout.decode().splitlines():
            fields = line.split()
            # "   2 imap/localhost@EXAMPLE.TEST (aes256-cts-hmac-sha1-96)"
            if len(fields) == 3 and fields[0].isdigit():
                entries.append((fields[1], fields[2].strip("()")))
        return entries

    # ------------------------------------------------------------ internals --

    def _write_configs(self):
        os.makedirs(self.workdir, exist_ok=True)
        addr = "%s:%d" % (self.host, self.port)
        with open(self.krb5_conf, "w") as f:
            f.write(
                "# krb5.conf of a throwaway postern lab realm; written by tests/lab/kdc.py.\n"
                "[libdefaults]\n"
                "\tdefault_realm = {realm}\n"
                "\tdns_lookup_kdc = false\n"
                "\tdns_lookup_realm = false\n"
                "\t# No DNS games on loopback: clients must name the exact SPN (imap/localhost).\n"
                "\tdns_canonicalize_hostname = false\n"
                "\trdns = false\n"
                "\tdefault_ccache_name = FILE:{ccache}\n"
                "\tdefault_keytab_name = FILE:{keytab}\n"
                "[realms]\n"
                "\t{realm} = {{\n"
                "\t\tkdc = {addr}\n"
                "\t}}\n"
                "[domain_realm]\n"
                "\tlocalhost = {realm}\n"
                "\t.example.test = {realm}\n"
                "\texample.test = {realm}\n".format(realm=self.realm, addr=addr,
                                                   ccache=self.ccache, keytab=self.keytab))
        enctypes = " ".join("%s:normal" % e for e in ENCTYPES)
        with open(self.kdc_conf, "w") as f:
            f.write(
                "# kdc.conf of a throwaway postern lab realm; written by tests/lab/kdc.py.\n"
                "[kdcdefaults]\n"
                "\tkdc_listen = {addr}\n"
                "\tkdc_tcp_listen = {addr}\n"
                "[realms]\n"
                "\t{realm} = {{\n"
                "\t\tdatabase_name = {wd}/principal\n"
                "\t\tkey_stash_file = {wd}/stash\n"
                "\t\tacl_file = {wd}/kadm5.acl\n"
                "\t\t# Without preauth the KDC answers a wrong password with an AS-REP\n"
                "\t\t# and only the client notices; with it the KDC itself says no.\n"
                "\t\tdefault_principal_flags = +preauth\n"
                "\t\tmax_life = 10h 0m 0s\n"
                "\t\tmax_renewable_life = 7d 0h 0m 0s\n"
                "\t\tmaster_key_type = aes256-cts-hmac-sha1-96\n"
                "\t\tsupported_enctypes = {enctypes}\n"
                "\t}}\n"
                "[logging]\n"
                "\tkdc = FILE:{log}\n"
                "\tdefault = FILE:{wd}/krb5lib.log\n".format(
                    realm=self.realm, addr=addr, wd=self.workdir, enctypes=enctypes,
                    log=self.log_path))
        with open(os.path.join(self.workdir, "kadm5.acl"), "w") as f:
            f.write("*/admin@%s *\n" % self.realm)

    def _create_realm(self):
        for stale in ("principal", "principal.ok", "principal.kadm5", "principal.kadm5.lock",
                      "stash", "service.keytab"):
            path = os.path.join(self.workdir, stale)
            if os.path.exists(path):
                os.unlink(path)
        env = self.env()
        daemon.run([_tool("kdb5_util"), "-r", self.realm, "create", "-s",
                    "-P", "lab-master-key-not-secret"], env=env, what="kdb5_util create")
        commands = []
        for user in self.users + self.disabled_users:
            commands.append("addprinc -pw %s %s" % (self.password, user))
        for user in self.disabled_users:
            commands.append("modprinc -allow_tix %s" % user)
        services = [p.rsplit("@", 1)[0] for p in self.service_principals]
        commands += ["addprinc -randkey %s" % s for s in services]
        commands.append("ktadd -k %s -e %s %s" % (
            self.keytab, ",".join("%s:normal" % e for e in ENCTYPES), " ".join(services)))
        # One kadmin.local for all commands: each start opens the database (~30 ms).
        done = daemon.run([_tool("kadmin.local"), "-r", self.realm],
                          env=env, input=("\n".join(commands) + "\n").encode(),
                          what="kadmin.local")
        output = done.stdout.decode() + done.stderr.decode()
        # kadmin.local exits 0 even when a command fails; its messages tell.
        if "error" in output.lower() or not os.path.exists(self.keytab):
            raise LabError("kadmin.local reported a problem:\n" + output)
