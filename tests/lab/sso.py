# Single sign-on clients and a posternd joined to the lab Samba domain (GSSAPI and NTLM tests).
"""Real clients only: python-gssapi (Debian python3-gssapi) with a kinit'ed ccache for
GSSAPI (RFC 4752's layer negotiation done here), python-ntlm-auth for NTLMv2 (its MD4 comes
from tests/lab/ad.py: OpenSSL 3 has none), imaplib for IMAP and poplib's socket helpers for
POP3 AUTH (poplib has no AUTH). posternd runs in a private mount namespace where ntlm_auth
finds the DC's winbindd (SambaDC.in_namespace), as its unprivileged user.
"""
import base64
import os
import pwd
import shutil
import struct

from . import ad, daemon, postern


def gssapi_module(ccache, krb5_conf):
    """python-gssapi, pointed at a ccache and a krb5.conf (read when a context starts)."""
    os.environ["KRB5_CONFIG"] = krb5_conf
    os.environ["KRB5CCNAME"] = "FILE:" + os.fspath(ccache)
    import gssapi
    return gssapi


class GssClient:
    """One RFC 4752 client exchange; call() answers each server challenge (decoded bytes)."""

    def __init__(self, ccache, krb5_conf, service="imap", host="mail.corp.example.test",
                 authzid=b"", channel_binding=None):
        self.gssapi = gssapi_module(ccache, krb5_conf)
        name = self.gssapi.Name("%s@%s" % (service, host),
                                self.gssapi.NameType.hostbased_service)
        bindings = None
        if channel_binding is not None:   # application data, e.g. tls_end_point(sock)
            bindings = self.gssapi.raw.ChannelBindings(application_data=channel_binding)
        self.ctx = self.gssapi.SecurityContext(name=name, usage="initiate",
                                               channel_bindings=bindings)
        self.authzid = authzid
        self.first_token = None

    def initial(self):
        self.first_token = self.ctx.step(None)
        return self.first_token

    def __call__(self, challenge):
        if self.first_token is None and not challenge:
            return self.initial()
        if not self.ctx.complete:
            return self.ctx.step(challenge) or b""
        if not challenge:
            return b""          # the empty response after the server's AP-REP
        offer = self.ctx.unwrap(challenge).message
        assert offer[0] & 1, offer   # "no security layer" is offered
        return self.ctx.wrap(struct.pack("!I", 0x01000000) + self.authzid, False).message


def tls_end_point(ssl_sock):
    """RFC 5929 tls-server-end-point channel binding data, as Windows' Extended Protection
    sends it: the prefix and the hash of the server's certificate (SHA-256 for the lab's
    ECDSA-SHA256 and RSA-SHA256 certificates)."""
    import hashlib
    return b"tls-server-end-point:" + hashlib.sha256(ssl_sock.getpeercert(True)).digest()


def ntlm_client(user, password, domain="CORP", workstation="WS01"):
    import ntlm_auth.compute_hash as compute_hash
    from ntlm_auth.ntlm import NtlmContext
    compute_hash._ntowfv1 = lambda pw: ad._md4(pw.encode("utf-16-le"))
    ctx = NtlmContext(user, password, domain=domain, workstation=workstation,
                      ntlm_compatibility=3)   # NTLMv2 only
    return lambda challenge: ctx.step(challenge or None)


def pop3_auth(p, mech, respond, initial=None):
    """AUTH over a poplib.POP3 object: (ok, last line). `respond(challenge bytes) -> bytes`."""
    if initial is None:
        p._putcmd("AUTH " + mech)
    else:
        p._putcmd("AUTH %s %s" % (mech, base64.b64encode(initial).decode() or "="))
    while True:
        line = p._getline()[0].decode()
        if line.startswith("+OK") or line.startswith("-ERR"):
            return line.startswith("+OK"), line
        assert line.startswith("+ ") or line == "+", line
        p._putcmd(base64.b64encode(respond(base64.b64decode(line[2:]))).decode())


def service_user():
    return "nobody"


class SsoServer(postern.Posternd):
    """posternd with a directory block for the lab DC and the given kerberos / ntlm blocks,
    started in the DC's winbind namespace with KRB5_CONFIG and a replay cache of its own."""

    def __init__(self, dc, tls_files, krb5_conf, blocks, logins="FailureDelay 0s",
                 directory_extra="", hosts=None, **kwargs):
        d = postern.public_dir("posternd-sso-")
        self.rcache = os.path.join(d, "rcache")
        os.makedirs(self.rcache)
        os.chmod(self.rcache, 0o1777)
        self.krb5_conf = os.path.join(d, "krb5.conf")
        shutil.copy(krb5_conf, self.krb5_conf)
        os.chmod(self.krb5_conf, 0o644)
        self.hosts = hosts
        self.dc = dc
        block = postern.directory_block(dc, d, logins=logins, extra=directory_extra)
        super().__init__(tls_files, directory=d, global_extra=block + blocks, **kwargs)

    def start(self, timeout=15.0):
        env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5RCACHEDIR=self.rcache)
        env.pop("KRB5CCNAME", None)
        env.pop("KRB5_KTNAME", None)
        argv = self.dc.in_namespace([postern.binary(), "-f", "-c", self.conf], hosts=self.hosts)
        self.proc = daemon.spawn(argv, self.log, env=env)
        daemon.wait_ready(self.proc, self.ready, "posternd", self.log, timeout=timeout)
        return self

    def helper_pids(self):
        """The ntlm_auth processes posternd started (its children)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open("/proc/%s/comm" % entry) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and comm == "ntlm_auth" and fields[0] != "Z":
                pids.append(int(entry))
        return pids


def unprivileged_gid(user="nobody"):
    return pwd.getpwnam(user).pw_gid
