# A throwaway OpenLDAP slapd with postern's AD-like schema and sample directory, on loopback.
"""Usage:

    with Slapd(tmpdir) as ldap:
        ldap.search("(sAMAccountName=jdoe)")
        ldap.bind(ldap.dn_of("jdoe"), "Demo-Pass-1")   # -> 0, or 49

Everything lives in `workdir`: slapd.conf, the mdb database, the ldapi
socket, slapd.log (operations at "stats" level), a client ldap.conf and,
with tls=True, a test CA and server certificate.
"""
import base64
import datetime
import hashlib
import os
import shutil
import tempfile
import time
import urllib.parse

from . import ad, daemon, ldif, ports, tls
from .daemon import LabError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(REPO, "schema", "postern.schema")
SAMPLE_LDIF = os.path.join(REPO, "schema", "sample.ldif")
PASSWORD = "Demo-Pass-1"           # every account in sample.ldif
SYSTEM_SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"


def _tool(name):
    # Debian puts the daemons in /usr/sbin, which a normal user's PATH may lack.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        package = {"slapd": "slapd"}.get(name, "ldap-utils")
        raise LabError("%s not found: apt-get install %s" % (name, package))
    return path


class Slapd(daemon.LabDaemon):
    """One slapd instance. Attributes are valid from construction on; pid once started."""

    domain = "example.test"
    netbios = "EXAMPLE"
    base_dn = "dc=example,dc=test"
    admin_dn = "cn=admin,dc=example,dc=test"
    service_dn = "cn=svc-postern,cn=Users,dc=example,dc=test"
    service_pw = PASSWORD
    password = PASSWORD
    domain_sid = ad.DOMAIN_SID

    def __init__(self, workdir, port=None, host="127.0.0.1", tls=False, tls_cert=None,
                 tls_key=None, ca=None, require_tls=False, ad_strict=False,
                 unauthenticated_bind=True, ldif_path=SAMPLE_LDIF, debug="stats",
                 size_limit=None, kerberos=None, bulk_ldif=None):
        """
        tls          generate a test CA + server cert in workdir/tls and enable StartTLS
        tls_cert/tls_key/ca  use these files instead (implies TLS)
        require_tls  refuse simple binds without TLS on TCP (confidentialityRequired, 13),
                     as Samba and hardened AD do; ldapi stays usable
        ad_strict    also refuse binds of locked, password-expired and expired accounts
                     (AD refuses them too, with data 775/773/701); by default only the
                     disabled bit does, so postern's own checks stay observable
        unauthenticated_bind  a DN with an EMPTY password "succeeds" as anonymous
                     (RFC 4513 5.1.2), as on AD; so a postern that forgets to refuse
                     empty passwords fails its tests. False: slapd's default, 53
        size_limit   answer at most this many entries per search, but any number in
                     pages (RFC 2696), as AD does with MaxPageSize (1000)
        bulk_ldif    an LDIF loaded offline with slapadd -q before start (fast for 100,000
                     entries; overlays such as memberof do not see it)
        kerberos     (krb5_conf, keytab): accept SASL GSSAPI binds with ldap/<any host>
                     keys of that keytab; user@REALM is cn=user,cn=Users,<base>
        debug        slapd -d level; any level keeps slapd in the foreground, "stats"
                     logs every operation and its result to slapd.log
        """
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.host = host
        self.port = port or ports.free_port(host)
        self.uri = "ldap://%s:%d" % (host, self.port)
        self.admin_pw = "lab-admin-" + hashlib.sha1(self.workdir.encode()).hexdigest()[:12]
        self.ldif_path = ldif_path
        self.require_tls = require_tls
        self.ad_strict = ad_strict
        self.unauthenticated_bind = unauthenticated_bind
        self.debug = debug
        self.size_limit = size_limit
        self.kerberos = kerberos
        self.bulk_ldif = bulk_ldif
        self.conf_path = os.path.join(self.workdir, "slapd.conf")
        self.log_path = os.path.join(self.workdir, "slapd.log")
        self.ldap_conf = os.path.join(self.workdir, "ldap.conf")
        self.data_dir = os.path.join(self.workdir, "data")
        self.ldapi_path = self._ldapi_socket_path()
        self.ldapi_uri = "ldapi://" + urllib.parse.quote(self.ldapi_path, safe="")
        self._want_tls = bool(tls or tls_cert)
        self.tls_cert, self.tls_key, self.ca_cert = tls_cert, tls_key, ca
        if tls_cert and not tls_key:
            raise ValueError("tls_cert needs tls_key")
        self.pid = None
        self.startup_seconds = None   # start() to "answers LDAP"
        self.load_seconds = None      # sample LDIF load
        self._proc = None

    # ----------------------------------------------------------- lifecycle --

    def start(self, fresh=True):
        """fresh=False restarts on the data of the last run (a server coming back after a
        crash: accounts exist from its first answer on)."""
        if self._proc is not None:
            raise LabError("slapd already started (pid %d)" % self.pid)
        slapd = _tool("slapd")
        if fresh:
            # A reused workdir (make demo twice) starts from scratch: the old
            # database would make the sample load fail with "already exists".
            shutil.rmtree(self.data_dir, ignore_errors=True)
            os.makedirs(self.data_dir)
            if os.path.exists(self.log_path):
                os.unlink(self.log_path)
        if self._want_tls and not self.tls_cert:
            files = tls.make_tls_files(os.path.join(self.workdir, "tls"),
                                       ip_addresses=(self.host,))
            self.tls_cert, self.tls_key, self.ca_cert = files.cert, files.key, files.ca_cert
        with open(self.conf_path, "w") as f:
            f.write(self._slapd_conf())
        with open(self.ldap_conf, "w") as f:
            f.write(self._client_conf())

        if self.bulk_ldif and fresh:
            daemon.run([_tool("slapadd"), "-q", "-f", self.conf_path, "-l", self.bulk_ldif],
                       what="slapadd " + os.path.basename(self.bulk_ldif), timeout=600)
        t0 = time.monotonic()
        urls = "%s/ %s" % (self.uri, self.ldapi_uri)
        self._proc = daemon.spawn([slapd, "-f", self.conf_path, "-h", urls, "-d", str(self.debug)],
                                  self.log_path, env=self._kerberos_env())
        self.pid = self._proc.pid
        try:
            # TCP accept alone can precede the end of start-up; a rootDSE read cannot.
            daemon.wait_ready(self._proc, self._answers, "slapd", self.log_path)
            t1 = time.monotonic()
            if self.ldif_path and fresh:
                self.load_ldif(self.ldif_path)
        except BaseException:
            self.stop()      # a half-started lab must not outlive the failure
            raise
        self.startup_seconds, self.load_seconds = t1 - t0, time.monotonic() - t1
        return self

    def stop(self, timeout=5.0, remove=False):
        """Stop slapd; with `remove` also its ldapi socket directory outside workdir."""
        super().stop(timeout, remove)
        if remove:
            if os.path.dirname(self.ldapi_path) != self.workdir:
                shutil.rmtree(os.path.dirname(self.ldapi_path), ignore_errors=True)


    # ------------------------------------------------------------- clients --

    def client_env(self, base=None):
        """Environment for ldapsearch & co. (and postern) talking to this slapd.

        LDAPCONF replaces /etc/ldap/ldap.conf and LDAPRC names a file that does
        not exist, so a developer's own ~/.ldaprc cannot change test results.
        """
        env = dict(os.environ if base is None else base)
        env["LDAPCONF"] = self.ldap_conf
        env["LDAPRC"] = "postern-lab-no-ldaprc"
        return env

    def search(self, filterstr="(objectClass=*)", attrs=(), base=None, scope="sub",
               bind_dn="service", password=None, uri=None, starttls=False):
        """ldapsearch; returns [ldif.Entry]. bind_dn: "service" (default), None (anonymous) or a DN.

        The filter goes to ldapsearch verbatim, so escape values yourself (RFC 4515).
        """
        argv = [_tool("ldapsearch"), "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5",
                "-H", uri or self.uri, "-b", self.base_dn if base is None else base, "-s", scope]
        argv += self._bind_args(bind_dn, password, starttls)
        argv += [filterstr] + list(attrs)
        done = daemon.run(argv, env=self.client_env(), check=False)
        if done.returncode == 32:          # noSuchObject: base does not exist
            return []
        if done.returncode != 0:
            raise LabError("ldapsearch %s failed (%d): %s" % (
                filterstr, done.returncode, done.stderr.decode("utf-8", "replace").strip()))
        return ldif.parse(done.stdout)

    def bind(self, dn, password, starttls=False, uri=None):
        """Simple bind via ldapwhoami; returns the LDAP result code (0 ok, 49 invalid credentials)."""
        argv = [_tool("ldapwhoami"), "-o", "nettimeout=5", "-H", uri or self.uri]
        argv += self._bind_args(dn, password, starttls)
        return daemon.run(argv, env=self.client_env(), check=False).returncode

    def dn_of(self, sam_account_name):
        """DN of the account with this sAMAccountName (exactly one, or LabError)."""
        hits = self.search("(sAMAccountName=%s)" % ldif.escape_filter_value(sam_account_name),
                           ["1.1"])
        if len(hits) != 1:
            raise LabError("%d entries with sAMAccountName=%s" % (len(hits), sam_account_name))
        return hits[0].dn

    def load_ldif(self, path):
        """Add entries over ldapi as the rootdn (SASL EXTERNAL), so overlays see them."""
        daemon.run([_tool("ldapadd"), "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri, "-f", path],
                   env=self.client_env(), what="ldapadd " + os.path.basename(path))

    def modify(self, ldif_text):
        """Apply LDIF change records (changetype: add/modify/delete) as the rootdn.

        Handy for tests that need a state the sample lacks, e.g. locking an account.
        """
        daemon.run([_tool("ldapmodify"), "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri],
                   env=self.client_env(), input=ldif_text.encode("utf-8"), what="ldapmodify")

    # ------------------------------------------------------------ internals --

    def _bind_args(self, dn, password, starttls):
        args = ["-x"]
        if starttls:
            args.append("-ZZ")   # fail rather than continue in clear text
        if dn == "service":
            dn = self.service_dn
            if password is None:
                password = self.service_pw
        if dn is not None:
            args += ["-D", dn, "-w", password if password is not None else ""]
        return args

    def _answers(self):
        if not ports.tcp_accepts(self.host, self.port):
            return False
        done = daemon.run([_tool("ldapsearch"), "-LLL", "-x", "-o", "nettimeout=1",
                           "-H", self.ldapi_uri, "-s", "base", "-b", "", "namingContexts"],
                          env=self.client_env(), check=False, timeout=5)
        return done.returncode == 0

    def _ldapi_socket_path(self):
        # sun_path holds 108 bytes; deep pytest tmp dirs can exceed that, so
        # the socket then goes to a short private directory (removed by stop(remove=True)).
        path = os.path.join(self.workdir, "ldapi")
        if len(path.encode()) < 100:
            return path
        return os.path.join(tempfile.mkdtemp(prefix="lab-ldapi-"), "ldapi")

    def _rootpw(self):
        salt = os.urandom(8)
        digest = hashlib.sha1(self.admin_pw.encode() + salt).digest()
        return "{SSHA}" + base64.b64encode(digest + salt).decode()

    def _slapd_conf(self):
        uid, gid = os.getuid(), os.getgid()
        lines = [
            "# slapd.conf of a throwaway postern lab directory; written by tests/lab/slapd.py.",
            "include %s/core.schema" % SYSTEM_SCHEMA_DIR,
            "include %s/cosine.schema" % SYSTEM_SCHEMA_DIR,
            "include %s/inetorgperson.schema" % SYSTEM_SCHEMA_DIR,
            "include %s" % SCHEMA,
            "pidfile %s" % os.path.join(self.workdir, "slapd.pid"),
            "argsfile %s" % os.path.join(self.workdir, "slapd.args"),
            "modulepath %s" % MODULE_DIR,
            "moduleload back_mdb",
            "moduleload memberof",
            "# Whoever runs the lab (same uid/gid) is the rootdn over ldapi with SASL EXTERNAL:",
            "# loading and test-time edits need no password, and nothing else gets in that way.",
            'authz-regexp "^gidNumber=%d\\\\+uidNumber=%d,cn=peercred,cn=external,cn=auth$" "%s"'
            % (gid, uid, self.admin_dn),
        ] + self._sasl_conf()
        if self.tls_cert:
            lines += ["TLSCertificateFile %s" % self.tls_cert,
                      "TLSCertificateKeyFile %s" % self.tls_key]
            if self.ca_cert:
                lines.append("TLSCACertificateFile %s" % self.ca_cert)
        if self.unauthenticated_bind:
            lines += ["# DN + empty password = anonymous, as AD answers it (postern must refuse these).",
                      "allow bind_anon_dn"]
        if self.require_tls:
            # TLS gives an SSF of 128+, ldapi 71, plain TCP 0.
            lines += ["# Simple binds need an encrypted transport, like Samba's default.",
                      "security simple_bind=64"]
        lines += [
            "",
            "database mdb",
            'suffix "%s"' % self.base_dn,
            'rootdn "%s"' % self.admin_dn,
            "rootpw %s" % self._rootpw(),
            "directory %s" % self.data_dir,
            "maxsize 1073741824",  # a sparse map: 100,000 bulk accounts need ~150 MB
            "# Throwaway data: skip fsync, it only slows loading down.",
            "dbnosync",
            "index objectClass eq",
            "index sAMAccountName,userPrincipalName,mailNickname,mail,proxyAddresses eq,sub",
            "index objectSid,userAccountControl,member eq",
        ] + self._limits() + [
            "",
            "# memberOf (defined by the overlay itself, operational) on members of 'group' entries.",
            "overlay memberof",
            "memberof-group-oc group",
            "memberof-member-ad member",
            "memberof-memberof-ad memberOf",
            "memberof-refint true",
            "",
        ]
        lines += self._acl()
        return "\n".join(lines) + "\n"

    def _kerberos_env(self):
        if not self.kerberos:
            return None
        krb5_conf, keytab = self.kerberos
        # The acceptor takes any ldap/<host> key of its keytab, so one slapd answers to
        # ldap/localhost and ldap/mail.example.test alike.
        own = os.path.join(self.workdir, "krb5.conf")
        with open(krb5_conf) as f:
            text = f.read()
        with open(own, "w") as f:
            f.write(text.replace("[libdefaults]\n", "[libdefaults]\n\tignore_acceptor_hostname = true\n", 1))
        return dict(os.environ, KRB5_CONFIG=own, KRB5_KTNAME="FILE:" + keytab,
                    KRB5RCACHETYPE="none")

    def _sasl_conf(self):
        if not self.kerberos:
            return []
        return ["# SASL GSSAPI: principal user@REALM is the account cn=user,cn=Users.",
                "sasl-host localhost",
                'authz-regexp "^uid=([^,]+)(,cn=[^,]+)?,cn=gssapi,cn=auth$" "cn=$1,cn=Users,%s"'
                % self.base_dn]

    def _limits(self):
        # Like AD: a paged search (RFC 2696) may return any number of entries in pages;
        # slapd's default caps even paged searches at the size limit (500).
        n = self.size_limit or 500
        return ["# Like AD's MaxPageSize: a plain search stops at the limit, a paged one does not.",
                "limits * size.soft=%d size.hard=%d size.pr=%d size.prtotal=unlimited" % (n, n, n)]

    def _acl(self):
        svc = self.service_dn
        acl = [
            "# rootDSE and schema for everyone; AD also answers the rootDSE anonymously.",
            'access to dn.base="" by * read',
            'access to dn.base="cn=Subschema" by * read',
            "",
            "# slapd ignores userAccountControl at bind time; AD refuses disabled accounts.",
            "# Denying even 'auth' on the password makes their bind fail with 49, as in AD.",
            'access to filter="(userAccountControl:1.2.840.113556.1.4.803:=2)" attrs=userPassword',
            "\tby * none",
        ]
        if self.ad_strict:
            # accountExpires is compared with the time slapd was configured:
            # good enough for a lab that lives minutes.
            now = ad.filetime(datetime.datetime.now(datetime.timezone.utc))
            acl += [
                "# ad_strict: locked (0x10) or password-expired (0x800000) per the computed",
                "# attribute, or accountExpires in the past, cannot bind either.",
                'access to filter="(|(msDS-User-Account-Control-Computed:1.2.840.113556.1.4.804:=%d)'
                '(&(accountExpires>=1)(accountExpires<=%d)))" attrs=userPassword'
                % (ad.UF_LOCKOUT | ad.UF_PASSWORD_EXPIRED, now),
                "\tby * none",
            ]
        acl += [
            "",
            "# Passwords only serve binds: nobody reads them, not the owner, not the service account.",
            "access to attrs=userPassword",
            "\tby anonymous auth",
            "\tby * none",
            "",
            "# NT hashes: only postern's service account (NTLM verification).",
            "access to attrs=sambaNTPassword",
            '\tby dn.exact="%s" read' % svc,
            "\tby * none",
            "",
            "# The rest, memberOf included: any bound account (AD's Authenticated Users);",
            "# anonymous sees nothing, so a missing service bind shows up in tests.",
            "access to *",
            '\tby dn.exact="%s" read' % svc,
            "\tby users read",
            "\tby * none",
        ]
        return acl

    def _client_conf(self):
        lines = ["# Client settings for this lab (use via LDAPCONF=this file)."]
        if self.ca_cert:
            lines += ["TLS_CACERT %s" % self.ca_cert, "TLS_REQCERT demand"]
        return "\n".join(lines) + "\n"
