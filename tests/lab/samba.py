# A throwaway Samba AD DC (CORP.EXAMPLE.TEST) on one loopback address, with postern's test accounts.
"""Usage:

    with SambaDC(tmpdir) as dc:          # provisions once per workdir (~7 s), starts samba -F
        dc.search("(sAMAccountName=jdoe)", ["userPrincipalName"])
        dc.bind("jdoe@corp.example.test", dc.password)     # -> (0, "") or (49, "... data 52e ...")

Everything lives in `workdir`: smb.conf (etc/), sam.ldb and the TLS files (private/),
pid, lock, ncalrpc and winbindd directories (run/, the workdir itself), and samba.log,
which holds samba's output with every authentication (log level auth_audit:3).
The DC listens on `host` only (default 127.0.0.12, port 389 and Samba's other fixed
ports): pick an address nothing else uses. samba runs in the foreground (-F) as our
child; stop() signals that PID only.

Facts this relies on (/work/shared/lab/README.md, checked here with Samba 4.17):
- `interfaces = ADDR/8`: a bare 127.0.0.12 is not an address of `lo`, and Samba then
  finds "no network interfaces" and smbd panics; with the /8 it binds exactly ADDR.
- provision drops `ldap server require strong auth`: we add it to smb.conf afterwards,
  so simple binds work over plain ldap:// as well as over StartTLS.
- Samba's self-made certificate names only DC1.<realm>, so StartTLS to ldap://ADDR fails
  host name verification; we put our own CA and a certificate for ADDR at the paths Samba
  uses (private/tls/{ca,cert,key}.pem) before the first start.
- mailNickname and protocolSettings are not in Samba's schema: they are added with
  Exchange's OIDs (1.2.840.113556.1.2.447, .2.528) and put on mailRecipient's mayContain,
  offline, with `dsdb:schema update allowed`.
- Samba sets a userPrincipalName on every user it creates; `noupn` has it removed over
  LDAP (ldapmodify) after start, so the implicit UPN noupn@corp.example.test is exercised.
- Samba does not maintain adminCount for new members of protected groups (no SDProp
  AdminSDHolder run): only Administrator and krbtgt have adminCount=1.
- locked1 is locked by real failed binds; the lockout threshold (2) comes from a
  fine-grained password settings object applied to locked1 only, so wrong-password tests
  on other accounts can never lock them.
- The DC takes no pwdLastSet but 0 and -1 and no lockoutTime from anyone, and it treats a
  maximum password age of one day or less as "never". pwexpired1 (maximum age 2 days,
  password set 5 days ago: PASSWORD_EXPIRED, bind sub-code 532) and unlocked1 (locked 2 h
  ago, lockout 1 h: lockoutTime set, LOCKOUT bit clear) get these values written into the
  stopped DC's database underneath the dsdb modules. unlocked1's next good bind resets it.

The accounts' password is PASSWORD (Demo-Pass-1: it meets Samba's complexity rules).
"""
import datetime
import json
import os
import shutil
import subprocess
import time

from . import daemon, ldif, ports, tls
from .daemon import LabError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "Demo-Pass-1"
ADMIN_PASSWORD = "Lab-Admin-Pass-1"
SERVICE_PASSWORD = "Svc-Postern-Pass-1"
SERVICES = "s3fs rpc ldap kdc winbindd"   # never a "-dns" list: that re-enables dns
SYSTEM_PYTHON = "/usr/bin/python3"        # the one python3-samba is built for
LOCKOUT_THRESHOLD = 2
DC_PORTS = (88, 389, 445, 636)   # Samba's ports are fixed; the address tells DCs apart

# sAMAccountName -> what populate() gives it (all get PASSWORD and mailNickname = name
# unless said otherwise).
ACCOUNTS = {
    "jdoe": {"given": "John", "sn": "Doe", "mail": "john.doe@{dom}",
             "proxy": ["SMTP:john.doe@{dom}", "smtp:jd@corp.example.de"]},
    "asmith": {"given": "Anna", "sn": "Smith", "alias": "anna", "mail": "anna.smith@{dom}",
               "proxy": ["SMTP:anna.smith@{dom}"]},
    "noupn": {},          # userPrincipalName removed after start
    "disabled1": {"disabled": True},
    "locked1": {},        # locked after start by failed binds
    "expired1": {"expired": True},
    "mustchange1": {"pwdlastset0": True},
    "hours1": {"logon_hours_none": True},
    "ws1": {"workstations": "OTHERPC"},
    "dadmin": {"groups": ["Domain Admins"]},
    "nested1": {"groups": ["Nested Admins"]},   # Nested Admins is a member of Domain Admins
    "pwexpired1": {},     # password older than its settings object's maximum age
    # Exchange's Set-CASMailbox -ImapEnabled $false / -PopEnabled $false (§ is U+00A7)
    "noimap1": {"protocol_settings": ["IMAP4\u00a70\u00a71\u00a74\u00a7ISO-8859-1\u00a70"
                                      "\u00a71\u00a70\u00a70"]},
    "nopop1": {"protocol_settings": ["POP3\u00a70\u00a71\u00a74\u00a7ISO-8859-1\u00a70"
                                     "\u00a7\u00a7\u00a7"]},
    "dup1": {"mail": "shared@{dom}"},     # two accounts, one primary address
    "dup2": {"mail": "shared@{dom}"},
    "primary1": {"groups": ["Domain Admins"], "primary_group": 512},  # memberOf lists nothing
    "mustchange2": {"pwdlastset0": True, "dont_expire": True},  # AD lets it in
    "unlocked1": {"stale_lockout": True},  # locked 2 h ago, lockout duration 1 h: usable again
    "upnother": {"upn": "other.name@{dom}"},   # explicit UPN that differs from sam@domain
    "formeradmin1": {"admin_count": True},   # adminCount 1 left behind by a past admin role
    "j\u00fcrgen": {"password": "Gr\u00fc\u00dfe-Pass-1"},   # non-ASCII name and password
}
COMPUTER = "WS01"


def _tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        package = {"samba": "samba-ad-dc", "samba-tool": "samba-ad-dc"}.get(name, "ldap-utils")
        raise LabError("%s not found: apt-get install %s (tools/deps.sh)" % (name, package))
    return path


def _filetime(when):
    return int((when.timestamp() + 11644473600) * 10**7)


def free_address(first=12, last=40):
    """A 127.0.0.N (first <= N <= last) where nothing listens on the DC's main ports, so two
    test runs on one machine (say, CI and a developer) get a DC each; tried in random order,
    so that runs starting at the same moment rarely pick the same one. (A bind test would be
    fooled by the TIME_WAIT sockets a stopped DC leaves; samba uses SO_REUSEADDR.)"""
    import random
    candidates = list(range(first, last + 1))
    random.shuffle(candidates)
    for n in candidates:
        host = "127.0.0.%d" % n
        if not any(ports.tcp_accepts(host, port) for port in DC_PORTS):
            return host
    raise LabError("no free loopback address in 127.0.0.%d-%d for a Samba DC" % (first, last))


class SambaDC(daemon.LabDaemon):
    """One Samba AD DC. Attributes are valid from construction on; pid once started."""

    password = PASSWORD
    admin_pw = ADMIN_PASSWORD
    service_pw = SERVICE_PASSWORD
    computer = COMPUTER + "$"
    computer_pw = COMPUTER.lower()

    def __init__(self, workdir, host="127.0.0.12", realm="CORP.EXAMPLE.TEST", netbios="CORP",
                 services=SERVICES):
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.host = host
        self.realm = realm.upper()
        self.domain = realm.lower()
        self.netbios = netbios.upper()
        self.services = services
        self.base_dn = ",".join("DC=" + part for part in self.domain.split("."))
        self.uri = "ldap://%s:389" % host
        self.ldaps_uri = "ldaps://%s:636" % host
        self.admin_dn = "CN=Administrator,CN=Users," + self.base_dn
        self.service_dn = "CN=svc-postern,CN=Users," + self.base_dn
        self.users_dn = "CN=Users," + self.base_dn
        self.conf_path = os.path.join(self.workdir, "etc", "smb.conf")
        self.private_dir = os.path.join(self.workdir, "private")
        self.tls_dir = os.path.join(self.private_dir, "tls")
        self.ca_cert = os.path.join(self.tls_dir, "ca.pem")
        self.log_path = os.path.join(self.workdir, "samba.log")
        self.ldap_conf = os.path.join(self.workdir, "ldap.conf")
        self.run_dir = os.path.join(self.workdir, "run")
        self.pid = None
        self.provision_seconds = None   # samba-tool domain provision
        self.populate_seconds = None    # schema, accounts, computer (offline)
        self.startup_seconds = None     # spawn to "answers LDAP"
        self.online_seconds = None      # UPN removal, lockout (over LDAP)
        self._proc = None

    # ----------------------------------------------------------- lifecycle --

    @property
    def provisioned(self):
        return os.path.exists(os.path.join(self.workdir, "populated"))

    def start(self, timeout=30.0):
        if self._proc is not None:
            raise LabError("samba already started (pid %d)" % self.pid)
        if not self.provisioned:
            if os.path.exists(self.conf_path):
                raise LabError("%s holds a half-provisioned DC: remove it" % self.workdir)
            os.makedirs(self.workdir, exist_ok=True)
            self.provision()
            self.populate()
        for port in DC_PORTS:
            if ports.tcp_accepts(self.host, port):
                raise LabError("%s:%d is in use: another DC on this address?" % (self.host, port))
        os.makedirs(self.run_dir, exist_ok=True)
        t0 = time.monotonic()
        self._proc = daemon.spawn([_tool("samba"), "-s", self.conf_path, "-F", "--debug-stdout"],
                                  self.log_path)
        self.pid = self._proc.pid
        try:
            daemon.wait_ready(self._proc, self._answers, "samba", self.log_path, timeout=timeout,
                              interval=0.05)
            self.startup_seconds = time.monotonic() - t0
            marker = os.path.join(self.workdir, "online-done")
            if not os.path.exists(marker):
                t1 = time.monotonic()
                self._online_setup()
                self.online_seconds = time.monotonic() - t1
                open(marker, "w").close()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=10.0, remove=False):
        """SIGTERM samba (its children follow), wait until its ports are closed."""
        if self._proc is not None:
            daemon.stop(self._proc, timeout)
            self._proc = None
            # the prefork children close their listening sockets a moment after the master
            for port in DC_PORTS:
                ports.wait_closed(self.host, port, timeout=timeout)
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


    # ---------------------------------------------------------- set-up steps --

    def provision(self):
        """samba-tool domain provision into workdir; smb.conf fix-ups; our TLS files."""
        t0 = time.monotonic()
        d = self.workdir
        empty = os.path.join(d, "provision-base.conf")
        open(empty, "w").close()    # not /etc/samba/smb.conf: its shares and paths stay out
        options = {
            "interfaces": "%s/8" % self.host,
            "bind interfaces only": "yes",
            "disable netbios": "yes",
            "server services": self.services,
            "pid directory": self.run_dir,
            "lock directory": d,
            "ncalrpc dir": os.path.join(self.run_dir, "ncalrpc"),
            "winbindd socket directory": os.path.join(self.run_dir, "winbindd"),
            "ntp signd socket directory": os.path.join(self.run_dir, "ntp_signd"),
            "log file": os.path.join(d, "log", "%m.log"),
        }
        argv = [_tool("samba-tool"), "domain", "provision", "-s", empty,
                "--realm=" + self.realm, "--domain=" + self.netbios, "--server-role=dc",
                "--dns-backend=NONE", "--adminpass=" + self.admin_pw, "--host-name=dc1",
                "--host-ip=" + self.host, "--targetdir=" + d]
        argv += ["--option=%s = %s" % kv for kv in options.items()]
        done = daemon.run(argv, check=False, timeout=120)
        with open(os.path.join(d, "provision.log"), "wb") as f:
            f.write(done.stdout + done.stderr)
        if done.returncode != 0:
            log = os.path.join(d, "provision.log")
            raise LabError("samba-tool domain provision failed (%d); see %s:\n%s"
                           % (done.returncode, log, daemon.log_tail(log)))
        with open(self.conf_path) as f:
            conf = f.read()
        # provision drops these: simple binds on plain ldap://; every bind in samba.log.
        extra = ("\tldap server require strong auth = no\n"
                 "\tlog level = 1 auth_audit:3\n")
        conf = conf.replace("[global]\n", "[global]\n" + extra, 1)
        with open(self.conf_path, "w") as f:
            f.write(conf)
        os.makedirs(os.path.join(d, "log"), exist_ok=True)
        self._make_tls()
        self.provision_seconds = time.monotonic() - t0

    def _make_tls(self):
        os.makedirs(self.tls_dir, exist_ok=True)
        work = os.path.join(self.workdir, "tls-work")
        files = tls.make_tls_files(work, dns_names=("dc1." + self.domain, self.domain),
                                   ip_addresses=(self.host,))
        for src, name in ((files.ca_cert, "ca.pem"), (files.cert, "cert.pem"),
                          (files.key, "key.pem")):
            shutil.copy(src, os.path.join(self.tls_dir, name))
        os.chmod(os.path.join(self.tls_dir, "key.pem"), 0o600)   # samba refuses others
        os.chmod(self.ca_cert, 0o644)

    def populate(self):
        """Schema extension and accounts, offline (samba not running), then the computer."""
        t0 = time.monotonic()
        params = {"password": self.password, "service_pw": self.service_pw,
                  "expired_at": _filetime(datetime.datetime.now(datetime.timezone.utc)
                                          - datetime.timedelta(days=1)),
                  "pwd_set_at": _filetime(datetime.datetime.now(datetime.timezone.utc)
                                          - datetime.timedelta(days=5)),
                  "stale_lockout_at": _filetime(datetime.datetime.now(datetime.timezone.utc)
                                                - datetime.timedelta(hours=2)),
                  "lockout_threshold": LOCKOUT_THRESHOLD}
        done = subprocess.run([SYSTEM_PYTHON, "-m", "tests.lab.samba", "populate", self.conf_path,
                               json.dumps(params)], cwd=REPO, capture_output=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=REPO))
        if done.returncode != 0:
            raise LabError("populating the DC failed (%d):\n%s" % (
                done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")[-3000:]))
        # A computer account, the way an administrator makes one. --prepare-oldjoin enables
        # it with the password COMPUTER.lower(): the DC would accept a bind with it.
        daemon.run([_tool("samba-tool"), "computer", "create", COMPUTER, "--prepare-oldjoin",
                    "-s", self.conf_path], what="samba-tool computer create")
        open(os.path.join(self.workdir, "populated"), "w").close()
        self.populate_seconds = time.monotonic() - t0

    def _online_setup(self):
        # noupn: Samba gave it noupn@<realm>; remove it over LDAP
        self.modify("dn: %s\nchangetype: modify\ndelete: userPrincipalName\n"
                    % self.dn_of("noupn"))
        # locked1: real failed binds up to the threshold of its password settings object
        for _ in range(LOCKOUT_THRESHOLD):
            self.bind("locked1@" + self.domain, "Wrong-Pass-0")
        locked = self.search("(sAMAccountName=locked1)", ["msDS-User-Account-Control-Computed"])
        if not int(locked[0].first("msDS-User-Account-Control-Computed", "0")) & 0x10:
            raise LabError("locked1 is not locked out after %d failed binds" % LOCKOUT_THRESHOLD)

    # ------------------------------------------------------ single sign-on --
    # A mail server joined to this domain (docs/join.md): adcli makes the computer account
    # with imap/ and pop/ SPNs and a keytab; Kerberos clients use krb5_conf(); ntlm_auth reaches
    # this DC's winbindd from a private mount namespace (in_namespace()).

    MAIL_HOST = "mail.corp.example.test"
    MAIL_COMPUTER = "POSTERN"

    def krb5_conf(self, path=None, extra_realms=""):
        """A client krb5.conf for this realm with no DNS at all (KDC by address)."""
        path = path or os.path.join(self.workdir, "krb5.conf")
        with open(path, "w") as f:
            f.write("[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_kdc = false\n"
                    "\tdns_lookup_realm = false\n\trdns = false\n"
                    "\tdns_canonicalize_hostname = false\n[realms]\n\t%s = {\n\t\tkdc = %s\n"
                    "\t}\n%s[domain_realm]\n\t.%s = %s\n\t%s = %s\n"
                    % (self.realm, self.realm, self.host, extra_realms, self.domain, self.realm,
                       self.domain, self.realm))
        os.chmod(path, 0o644)
        return path

    def kinit(self, principal, password, ccache, krb5_conf=None, extra=()):
        """Real kinit with the password on stdin: the CompletedProcess (no check)."""
        env = dict(os.environ, KRB5_CONFIG=krb5_conf or self.krb5_conf(),
                   KRB5CCNAME="FILE:" + os.fspath(ccache))
        return daemon.run(["kinit"] + list(extra) + [principal], env=env,
                          input=(password + "\n").encode(), check=False)

    def join(self, keytab, host=MAIL_HOST, computer=MAIL_COMPUTER):
        """The documented join (docs/join.md): `adcli join` creates the computer account with
        imap/ and pop/ SPNs for `host` and writes its keys to `keytab` (0600). Once per DC;
        later calls copy the keytab of the first."""
        first = os.path.join(self.workdir, "join.keytab")
        if not os.path.exists(first):
            # the DC's own ldap/ SPNs (adcli binds with GSSAPI) come from the dnsupdate
            # service, which this DC does not run
            daemon.run(["samba_spnupdate", "-s", self.conf_path], what="samba_spnupdate")
            done = daemon.run(
                ["adcli", "join", "--domain=" + self.domain, "--domain-realm=" + self.realm,
                 "--domain-controller=" + self.host, "--host-fqdn=" + host,
                 "--computer-name=" + computer, "--service-name=imap", "--service-name=pop",
                 "--host-keytab=" + first + ".tmp", "--login-user=Administrator",
                 "--stdin-password", "--verbose"],
                env=dict(os.environ, KRB5_CONFIG=self.krb5_conf()),
                input=(self.admin_pw + "\n").encode(), check=False, timeout=60)
            with open(os.path.join(self.workdir, "adcli-join.log"), "wb") as f:
                f.write(done.stdout + done.stderr)
            if done.returncode != 0:
                raise LabError("adcli join failed (%d): %s" % (
                    done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")[-2000:]))
            os.rename(first + ".tmp", first)
        shutil.copy(first, keytab)
        os.chmod(keytab, 0o600)
        return keytab

    def spns(self, sam_account_name):
        return self.account(sam_account_name, ["servicePrincipalName"]).text(
            "servicePrincipalName")

    @property
    def winbindd_socket_dir(self):
        return os.path.join(self.run_dir, "winbindd")

    def open_winbind_privileged(self, gid):
        """ntlm_auth needs winbindd's privileged pipe (winbindd_privileged, 0750): give its
        directory to `gid` (Debian's winbindd_priv group, here the test's unprivileged user's)
        and make the path to it traversable. Returns an undo function."""
        priv = os.path.join(self.workdir, "state", "winbindd_privileged")
        changed = []
        st = os.stat(priv)
        os.chown(priv, -1, gid)
        changed.append(lambda: os.chown(priv, -1, st.st_gid))
        d = os.path.dirname(priv)
        while d != "/":
            mode = os.stat(d).st_mode & 0o7777
            if not mode & 0o001:
                os.chmod(d, mode | 0o001)
                changed.append(lambda d=d, mode=mode: os.chmod(d, mode))
            d = os.path.dirname(d)

        def undo():
            for f in reversed(changed):
                f()
        return undo

    def in_namespace(self, argv, hosts=None):
        """argv run in a private mount namespace where /run/samba/winbindd is this DC's
        winbindd (libwbclient knows no other place) and, with `hosts`, /etc/hosts is that
        file. unshare(1) and sh exec, so the PID is argv's."""
        script = ('{ if [ -d /run/samba ]; then mount -t tmpfs postern-lab /run/samba; else '
                  'mount -t tmpfs postern-lab /run && mkdir -p /run/samba; fi; } && '
                  'mkdir -p /run/samba/winbindd && mount --bind "$0" /run/samba/winbindd && '
                  '{ [ -z "$POSTERN_LAB_HOSTS" ] || mount --bind "$POSTERN_LAB_HOSTS" /etc/hosts; } '
                  '&& exec "$@"')
        return (["env", "POSTERN_LAB_HOSTS=" + (hosts or ""), "unshare", "-m", "--", "/bin/sh",
                 "-c", script, self.winbindd_socket_dir] + list(argv))

    # ------------------------------------------------------------- clients --

    def client_env(self):
        """ldapsearch & co.: our own ldap.conf (CA, no referrals), no ~/.ldaprc."""
        if not os.path.exists(self.ldap_conf):
            with open(self.ldap_conf, "w") as f:
                f.write("# Client settings for this lab DC (LDAPCONF).\nTLS_CACERT %s\n"
                        "TLS_REQCERT demand\nREFERRALS off\n" % self.ca_cert)
        env = dict(os.environ)
        env["LDAPCONF"] = self.ldap_conf
        env["LDAPRC"] = "postern-lab-no-ldaprc"
        return env

    def search(self, filterstr="(objectClass=*)", attrs=(), base=None, scope="sub",
               bind_dn=None, password=None, starttls=False):
        """ldapsearch as Administrator (or bind_dn/password); returns [ldif.Entry]."""
        argv = [_tool("ldapsearch"), "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5",
                "-x", "-H", self.uri, "-b", self.base_dn if base is None else base, "-s", scope,
                "-D", bind_dn or self.admin_dn, "-w", password or self.admin_pw]
        if starttls:
            argv.append("-ZZ")
        argv += [filterstr] + list(attrs)
        done = daemon.run(argv, env=self.client_env(), check=False)
        if done.returncode == 32:
            return []
        if done.returncode != 0:
            raise LabError("ldapsearch %s failed (%d): %s" % (
                filterstr, done.returncode, done.stderr.decode("utf-8", "replace").strip()))
        return ldif.parse(done.stdout)

    def bind(self, who, password, starttls=False):
        """Simple bind (DN, UPN or DOMAIN\\name), then a rootDSE read: (result code, diagnostic)."""
        # ldapwhoami would fail after the bind: Samba has no "Who am I?" operation
        argv = [_tool("ldapsearch"), "-LLL", "-o", "nettimeout=5", "-x", "-H", self.uri,
                "-D", who, "-w", password, "-s", "base", "-b", "", "(objectClass=*)", "1.1"]
        if starttls:
            argv.append("-ZZ")
        done = daemon.run(argv, env=self.client_env(), check=False)
        return done.returncode, done.stderr.decode("utf-8", "replace").strip()

    def modify(self, ldif_text):
        """Apply LDIF change records as Administrator."""
        daemon.run([_tool("ldapmodify"), "-x", "-o", "nettimeout=5", "-H", self.uri,
                    "-D", self.admin_dn, "-w", self.admin_pw],
                   env=self.client_env(), input=ldif_text.encode("utf-8"), what="ldapmodify")

    def dn_of(self, sam_account_name):
        hits = self.search("(sAMAccountName=%s)" % ldif.escape_filter_value(sam_account_name),
                           ["1.1"])
        if len(hits) != 1:
            raise LabError("%d entries with sAMAccountName=%s" % (len(hits), sam_account_name))
        return hits[0].dn

    def account(self, sam_account_name, attrs):
        hits = self.search("(sAMAccountName=%s)" % ldif.escape_filter_value(sam_account_name),
                           list(attrs))
        if len(hits) != 1:
            raise LabError("%d entries with sAMAccountName=%s" % (len(hits), sam_account_name))
        return hits[0]

    def auth_log(self):
        """samba's authentication records ("Auth: [LDAP,simple bind] user [D]\\[name] ...")."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return [line.strip() for line in f if line.startswith("Auth: ")]
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------ internals --

    def _answers(self):
        if not ports.tcp_accepts(self.host, 389):
            return False
        done = daemon.run([_tool("ldapsearch"), "-LLL", "-x", "-o", "nettimeout=1", "-H", self.uri,
                           "-s", "base", "-b", "", "defaultNamingContext"],
                          env=self.client_env(), check=False, timeout=5)
        return done.returncode == 0 and b"defaultNamingContext" in done.stdout


# --------------------------------------------------------------------------------------------
# Offline population: runs in a child /usr/bin/python3 (`-m tests.lab.samba populate CONF
# PARAMS`), because python3-samba exists only for the system interpreter and must not be
# imported into the test process.


def _populate(conf_path, params):
    import ldb
    from samba.auth import system_session
    from samba.netcmd.pso import make_pso_ldb_msg
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(conf_path)
    lp.set("dsdb:schema update allowed", "true")
    db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
    base = str(db.domain_dn())
    dom = lp.get("realm").lower()
    schema = str(db.get_schema_basedn())
    pw = params["password"]

    # 1. Exchange's mailNickname (ms-Exch-Mail-Nickname) and protocolSettings
    #    (ms-Exch-Protocol-Settings, multi-valued) with Exchange's OIDs, on the mailRecipient
    #    aux class, which user, group and contact carry.
    exchange = (("ms-Exch-Mail-Nickname", "1.2.840.113556.1.2.447", "mailNickname", True, 64),
                ("ms-Exch-Protocol-Settings", "1.2.840.113556.1.2.528", "protocolSettings",
                 False, 1024))
    for cn, oid, name, single, upper in exchange:
        if db.search(schema, expression="(lDAPDisplayName=%s)" % name, attrs=["dn"]):
            continue
        db.add_ldif("""dn: CN=%s,%s
objectClass: top
objectClass: attributeSchema
cn: %s
attributeID: %s
lDAPDisplayName: %s
adminDisplayName: %s
attributeSyntax: 2.5.5.12
oMSyntax: 64
isSingleValued: %s
rangeLower: 1
rangeUpper: %d
searchFlags: 1
isMemberOfPartialAttributeSet: TRUE
systemOnly: FALSE
""" % (cn, schema, cn, oid, name, cn, "TRUE" if single else "FALSE", upper))
        db.modify_ldif("dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n")
        db.modify_ldif("dn: CN=Mail-Recipient,%s\nchangetype: modify\nadd: mayContain\n"
                       "mayContain: %s\n" % (schema, name))
        db.modify_ldif("dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n")

    # Exchange's msExchDelegateListLink (Full Access to a mailbox): DN-valued. Its schema OID
    # is not published; the lab's comes from OpenLDAP's experimental arc, as in
    # schema/postern.schema. postern reads it by name.
    if not db.search(schema, expression="(lDAPDisplayName=msExchDelegateListLink)", attrs=["dn"]):
        db.add_ldif("""dn: CN=ms-Exch-Delegate-List-Link,%s
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Delegate-List-Link
attributeID: 1.3.6.1.4.1.4203.666.11.7001
lDAPDisplayName: msExchDelegateListLink
adminDisplayName: ms-Exch-Delegate-List-Link
attributeSyntax: 2.5.5.1
oMSyntax: 127
oMObjectClass:: KwwCh3McAIVK
isSingleValued: FALSE
searchFlags: 0
systemOnly: FALSE
""" % schema)
        db.modify_ldif("dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n")
        db.modify_ldif("dn: CN=Mail-Recipient,%s\nchangetype: modify\nadd: mayContain\n"
                       "mayContain: msExchDelegateListLink\n" % schema)
        db.modify_ldif("dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n")

    # 2. Passwords do not expire (maxPwdAge 0); complexity stays on; no domain-wide lockout.
    db.modify_ldif("dn: %s\nchangetype: modify\nreplace: maxPwdAge\nmaxPwdAge: 0\n" % base)

    def dn(sam):
        return db.search(base, expression="(sAMAccountName=%s)" % ldb.binary_encode(sam),
                         attrs=["dn"])[0].dn

    def replace(sam, attr, values):
        m = ldb.Message(dn(sam))
        m[attr] = ldb.MessageElement(values, ldb.FLAG_MOD_REPLACE, attr)
        db.modify(m)

    # 3. Groups: Nested Admins is itself a member of Domain Admins.
    db.newgroup("Nested Admins", description="nested in Domain Admins")
    db.add_remove_group_members("Domain Admins", ["Nested Admins"], add_members_operation=True)

    #    IMAP Users holds jdoe directly and asmith through the nested group Sales.
    db.newgroup("IMAP Users", description="protocol enablement (AllowGroup)")
    db.newgroup("Sales", description="nested in IMAP Users")
    db.add_remove_group_members("IMAP Users", ["Sales"], add_members_operation=True)

    # 4. The service account postern searches with: an ordinary user.
    db.newuser("svc-postern", params["service_pw"], useusernameascn=True,
               description="postern lookups")

    # 5. Test accounts.
    for sam, spec in ACCOUNTS.items():
        db.newuser(sam, spec.get("password", pw), givenname=spec.get("given"),
                   surname=spec.get("sn"),
                   mailaddress=spec["mail"].format(dom=dom) if "mail" in spec else None)
        replace(sam, "mailNickname", [spec.get("alias", sam)])
        if "upn" in spec:
            replace(sam, "userPrincipalName", [spec["upn"].format(dom=dom)])
        if "proxy" in spec:
            replace(sam, "proxyAddresses", [p.format(dom=dom) for p in spec["proxy"]])
        if spec.get("disabled"):
            db.disable_account("(sAMAccountName=%s)" % sam)
        if spec.get("expired"):
            replace(sam, "accountExpires", [str(params["expired_at"])])
        if spec.get("pwdlastset0"):
            replace(sam, "pwdLastSet", ["0"])
        if spec.get("logon_hours_none"):
            replace(sam, "logonHours", [bytes(21)])
        if "workstations" in spec:
            replace(sam, "userWorkstations", [spec["workstations"]])
        if "protocol_settings" in spec:
            replace(sam, "protocolSettings", spec["protocol_settings"])
        for group in spec.get("groups", ()):
            db.add_remove_group_members(group, [sam], add_members_operation=True)
        if "primary_group" in spec:    # AD then drops the explicit member link
            replace(sam, "primaryGroupID", [str(spec["primary_group"])])
        if spec.get("admin_count"):
            replace(sam, "adminCount", ["1"])
        if spec.get("dont_expire"):
            replace(sam, "userAccountControl", [str(0x200 | 0x10000)])

    db.add_remove_group_members("IMAP Users", ["jdoe"], add_members_operation=True)
    db.add_remove_group_members("Sales", ["asmith"], add_members_operation=True)
    # anna's mailbox (asmith) delegated to jdoe, as Exchange records Full Access.
    m = ldb.Message(dn("asmith"))
    m["msExchDelegateListLink"] = ldb.MessageElement([str(dn("jdoe"))], ldb.FLAG_MOD_ADD,
                                                     "msExchDelegateListLink")
    db.modify(m)

    # 6. Lockout for locked1 only: a fine-grained password settings object.
    pso_dn = "CN=postern-lockout,CN=Password Settings Container,CN=System,%s" % base
    db.add(make_pso_ldb_msg(None, db, pso_dn, create=True,
                            lockout_threshold=params["lockout_threshold"], complexity="on",
                            precedence=1, store_plaintext="off", history_length=0,
                            min_pwd_length=7, min_pwd_age=0, max_pwd_age=0,
                            lockout_duration=60, reset_lockout_after=60))
    m = ldb.Message(ldb.Dn(db, pso_dn))
    m["msDS-PSOAppliesTo"] = ldb.MessageElement([str(dn("locked1")), str(dn("unlocked1"))],
                                                ldb.FLAG_MOD_ADD, "msDS-PSOAppliesTo")
    db.modify(m)

    # 7. An expired password for pwexpired1: its own settings object, maximum age 2 days (AD
    #    takes one day or less for "never"), and a pwdLastSet 5 days back.
    pso_dn = "CN=postern-pwexpiry,CN=Password Settings Container,CN=System,%s" % base
    db.add(make_pso_ldb_msg(None, db, pso_dn, create=True, lockout_threshold=0,
                            complexity="on", precedence=2, store_plaintext="off",
                            history_length=0, min_pwd_length=7, min_pwd_age=0,
                            max_pwd_age=2, lockout_duration=60, reset_lockout_after=60))
    m = ldb.Message(ldb.Dn(db, pso_dn))
    m["msDS-PSOAppliesTo"] = ldb.MessageElement(str(dn("pwexpired1")), ldb.FLAG_MOD_ADD,
                                                "msDS-PSOAppliesTo")
    db.modify(m)
    raw = {str(dn("pwexpired1")): ("pwdLastSet", params["pwd_set_at"]),
           str(dn("unlocked1")): ("lockoutTime", params["stale_lockout_at"])}
    db = m = None    # closes sam.ldb: tdb refuses a second open in one process
    # 8. Values the DC sets only itself, with the time of the event: a password set 5 days
    #    ago (it accepts no pwdLastSet but 0 and -1, whoever asks) and a lockout 2 hours ago
    #    (unlocked1: lockoutTime stays set, the computed LOCKOUT bit is gone). Written into
    #    the domain partition's database underneath the dsdb modules; the DC is not running.
    import gc
    gc.collect()
    part = ldb.Ldb(url=os.path.join(lp.private_path("sam.ldb.d"), "%s.ldb" % base.upper()),
                   options=["modules:"])
    for target, (attr, value) in raw.items():
        m = ldb.Message(ldb.Dn(part, target))
        m[attr] = ldb.MessageElement(str(value), ldb.FLAG_MOD_REPLACE, attr)
        part.modify(m)


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "populate":
        _populate(sys.argv[2], json.loads(sys.argv[3]))
    else:
        sys.exit("usage: python3 -m tests.lab.samba populate SMB.CONF PARAMS-JSON")
