#!/usr/bin/python3
# `make demo`: a throwaway directory (slapd + MIT KDC) and posternd on 127.0.0.1, until Ctrl-C.
"""usage: tools/demo.py --posternd build/posternd [--dir build/demo]

The demo is a contract that README documents and tests rely on:
  IMAP STARTTLS 127.0.0.1:10143, IMAP over TLS 10993, POP3 STLS 10110, POP3 over TLS 10995;
  LDAP 127.0.0.1:10389 (domain example.test, NetBIOS EXAMPLE), KDC 127.0.0.1:10088
  (realm EXAMPLE.TEST); users jdoe, asmith (alias anna) and Administrator, password
  Demo-Pass-1; files at fixed paths under the demo directory.
It prints one line starting with "postern demo ready", then waits; SIGINT or SIGTERM stops
every process it started (by PID) and exits 0.
"""
import argparse
import os
import shutil
import signal
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.lab import Kdc, LabError, Slapd, ad, postern, ports, tls  # noqa: E402

MAIL_PORTS = {"imap": 10143, "imaps": 10993, "pop3": 10110, "pop3s": 10995}
LDAP_PORT, KDC_PORT = 10389, 10088
PASSWORD = "Demo-Pass-1"


WELCOME = """From: postern demo <postmaster@example.test>
To: {name} <{user}@example.test>
Subject: Welcome to the postern demo
Date: Sun, 22 Nov 2026 09:00:00 +0000
Message-ID: <welcome-{user}@example.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello {name},

this message was delivered into your Maildir by the demo. Read it, flag it, move it or
delete it over IMAP, or download it over POP3.
""".replace("\n", "\r\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posternd", required=True)
    p.add_argument("--dir", default="build/demo")
    args = p.parse_args()
    os.environ["POSTERND"] = os.path.abspath(args.posternd)
    demo = os.path.abspath(args.dir)

    busy = [port for port in list(MAIL_PORTS.values()) + [LDAP_PORT, KDC_PORT]
            if ports.port_in_use("127.0.0.1", port)]
    if busy:
        sys.exit("make demo: ports %s on 127.0.0.1 are in use (another demo running?)"
                 % ", ".join(map(str, busy)))

    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))

    # A fresh directory each time; only the fixed paths are promised.
    shutil.rmtree(demo, ignore_errors=True)
    os.makedirs(demo)
    os.chmod(demo, 0o755)  # posternd re-reads its files as an unprivileged user on SIGHUP
    started = []
    status = 0
    try:
        tls_dir = os.path.join(demo, "tls")
        ca_cert, ca_key = tls.make_ca(tls_dir, name="postern demo CA")
        cert, key = tls.make_server_cert(tls_dir, ca_cert, ca_key, stem="server")
        os.chmod(tls_dir, 0o755)
        os.chmod(key, 0o640)
        if os.geteuid() == 0:
            import grp
            os.chown(key, 0, grp.getgrnam("nogroup").gr_gid)

        slapd = Slapd(os.path.join(demo, "ldap"), port=LDAP_PORT, tls=True)
        slapd.start()
        started.append(slapd)
        kdc = Kdc(os.path.join(demo, "kdc"), port=KDC_PORT)
        kdc.start()
        started.append(kdc)

        listeners = [postern.Listener("imap", "imap", "starttls", port=MAIL_PORTS["imap"]),
                     postern.Listener("imaps", "imap", "implicit", port=MAIL_PORTS["imaps"]),
                     postern.Listener("pop3", "pop3", "starttls", port=MAIL_PORTS["pop3"]),
                     postern.Listener("pop3s", "pop3", "implicit", port=MAIL_PORTS["pop3s"])]
        # GSSAPI: the KDC's imap/ and pop/ keys for localhost (and mail.example.test)
        keytab = os.path.join(demo, "postern.keytab")
        shutil.copy(kdc.keytab, keytab)
        os.chmod(keytab, 0o600)   # read at start, before posternd drops privileges
        kerberos = "kerberos {\n    Keytab %s\n    HostName localhost %s\n}\n" % (
            keytab, kdc.service_host)
        # NTLM checked here from the sample users' NT hashes (sambaNTPassword in slapd)
        kerberos += "ntlm {\n    NTHashAttribute sambaNTPassword\n}\n"
        server = postern.Posternd(tls.TlsFiles(ca_cert, ca_key, cert, key), listeners=listeners,
                                  directory=demo, log_level="info", mail=True,
                                  global_extra=postern.directory_block(slapd, demo,
                                                                       logins="FailureDelay 2s")
                                  + kerberos)
        server.write_config()
        os.chmod(key, 0o640)  # write_config() relaxes test keys; the demo keeps its own mode
        server.start()
        started.append(server)
        # a message in jdoe's and asmith's INBOX, delivered as an MTA would
        for user, name in (("jdoe", "John Doe"), ("asmith", "Anna Smith")):
            key = str(uuid.UUID(bytes_le=ad.fixed_guid(user)))
            postern.deliver(server, key, WELCOME.format(name=name, user=user))

        rel = lambda path: os.path.relpath(path, os.getcwd())  # noqa: E731
        print("postern demo ready: IMAP STARTTLS 127.0.0.1:%d, IMAPS 127.0.0.1:%d, "
              "POP3 STLS 127.0.0.1:%d, POP3S 127.0.0.1:%d; users jdoe, asmith (alias anna), "
              "Administrator (must be refused), password %s; config %s; audit log %s; "
              "krb5.conf %s; CA %s; LDAP %s (base %s), realm %s"
              % (MAIL_PORTS["imap"], MAIL_PORTS["imaps"], MAIL_PORTS["pop3"], MAIL_PORTS["pop3s"],
                 PASSWORD, rel(server.conf), rel(server.audit), rel(kdc.krb5_conf), rel(ca_cert),
                 slapd.uri, slapd.base_dn, kdc.realm), flush=True)
        print("""
Connect, for example:
  openssl s_client -quiet -CAfile {ca} -connect 127.0.0.1:10993
  openssl s_client -quiet -CAfile {ca} -starttls imap -connect 127.0.0.1:10143
  curl -v --cacert {ca} --connect-to localhost:10995:127.0.0.1:10995 -u jdoe:{pw} pop3s://localhost:10995/
  /usr/bin/python3 -c "import imaplib,ssl; m=imaplib.IMAP4_SSL('127.0.0.1',10993,ssl_context=ssl.create_default_context(cafile='{ca}')); print(m.capabilities)"
Kerberos (GSSAPI) without a password:
  export KRB5_CONFIG={krb5}; echo {pw} | kinit jdoe
  curl --cacert {ca} --login-options AUTH=GSSAPI -u : -X NOOP imaps://localhost:10993/
NTLM (NTLMv2, checked against the directory's NT hash):
  curl --cacert {ca} --login-options AUTH=NTLM -u 'EXAMPLE\\jdoe:{pw}' -X NOOP imaps://localhost:10993/
jdoe logs in as jdoe, EXAMPLE\\jdoe or jdoe@example.test; asmith only as asmith@example.test
(her alias anna differs from her account name); Administrator is always refused; their INBOX holds a welcome message (mail lives in {mail}/<objectGUID>, Maildir++):
  mutt -f imaps://jdoe@localhost:10993/ -e 'set ssl_ca_certificates_file={ca}'
Every attempt is in {audit}. Server log: {log}.
Ctrl-C stops the demo.""".format(ca=rel(ca_cert), pw=PASSWORD, audit=rel(server.audit),
                                  log=rel(server.log), krb5=rel(kdc.krb5_conf),
                                  mail=rel(server.mail_root)), flush=True)

        while not stop:
            for name, alive in (("posternd", server.proc.poll() is None),
                                ("slapd", slapd.running), ("krb5kdc", kdc.running)):
                if not alive:
                    print("make demo: %s exited unexpectedly; see %s" % (name, demo),
                          file=sys.stderr)
                    status = 1
                    stop.append(0)
            time.sleep(0.2)
    except (LabError, AssertionError, OSError) as exc:
        print("make demo: %s" % exc, file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for thing in reversed(started):
            if isinstance(thing, postern.Posternd):
                thing.stop(check=False)
            else:
                thing.stop()
        print("postern demo stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
