#!/usr/bin/python3
# Run the directory lab (slapd + KDC) in the foreground until SIGTERM/SIGINT; used by `make demo`.
"""usage: /usr/bin/python3 tests/lab/run_lab.py --dir DIR [--ldap-port P] [--kdc-port P]

Starts slapd and krb5kdc on 127.0.0.1, writes DIR/lab.env (KEY=VALUE lines,
shell-sourceable), prints exactly one line "lab ready" on stdout, then waits.
SIGTERM or SIGINT stops both daemons (by PID) and exits 0. If a daemon dies on
its own, the other one is stopped too and the exit status is 1.
"""
import argparse
import os
import shlex
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.lab import Kdc, LabError, Slapd  # noqa: E402  (needs the path above)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Run postern's directory lab (slapd + MIT KDC).")
    p.add_argument("--dir", required=True, help="lab directory (created; kept after exit)")
    p.add_argument("--ldap-port", type=int, default=None, help="LDAP port (default: any free)")
    p.add_argument("--kdc-port", type=int, default=None, help="KDC port, UDP+TCP (default: any free)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--service-host", default="mail.example.test",
                   help="host part of the imap/ and pop/ service principals besides localhost")
    p.add_argument("--no-tls", action="store_true", help="no StartTLS on slapd")
    p.add_argument("--no-kdc", action="store_true", help="LDAP only")
    p.add_argument("--require-tls", action="store_true",
                   help="slapd refuses simple binds without TLS (like Samba)")
    return p.parse_args(argv)


def lab_env(args, slapd, kdc):
    env = {
        "LAB_DIR": os.path.abspath(args.dir),
        "LAB_PASSWORD": slapd.password,
        "LDAP_URI": slapd.uri,
        "LDAPI_URI": slapd.ldapi_uri,
        "LDAP_HOST": slapd.host,
        "LDAP_PORT": slapd.port,
        "LDAP_BASE": slapd.base_dn,
        "LDAP_DOMAIN": slapd.domain,
        "LDAP_NETBIOS": slapd.netbios,
        "LDAP_SERVICE_DN": slapd.service_dn,
        "LDAP_SERVICE_PW": slapd.service_pw,
        "LDAP_ADMIN_DN": slapd.admin_dn,
        "LDAP_ADMIN_PW": slapd.admin_pw,
        "LDAP_CA_CERT": slapd.ca_cert or "",
        "LDAPCONF": slapd.ldap_conf,
        "SLAPD_PID": slapd.pid,
    }
    if kdc is not None:
        kenv = kdc.env(base={})
        env.update({
            "KRB5_REALM": kdc.realm,
            "KRB5_CONFIG": kenv["KRB5_CONFIG"],
            "KRB5_KDC_PROFILE": kenv["KRB5_KDC_PROFILE"],
            "KRB5_KTNAME": kenv["KRB5_KTNAME"],
            "KRB5CCNAME": kenv["KRB5CCNAME"],
            "KRB5RCACHEDIR": kenv["KRB5RCACHEDIR"],
            "KDC_PORT": kdc.port,
            "KDC_PID": kdc.pid,
        })
    return env


def write_env(path, env):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        # Plain KEY=VALUE (no "export") so non-shell readers can parse it too;
        # in a shell use `set -a; . lab.env; set +a` so child processes see it.
        f.write("# Written by tests/lab/run_lab.py; valid while it runs.\n"
                "# Shell: set -a; . %s; set +a\n" % path)
        for key, value in env.items():
            f.write("%s=%s\n" % (key, shlex.quote(str(value))))
    os.replace(tmp, path)   # readers never see a half-written file


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stop_requested = []
    # Set before starting anything, so an early signal still stops what started.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_requested.append(signum))

    lab_dir = os.path.abspath(args.dir)
    os.makedirs(lab_dir, exist_ok=True)
    slapd = Slapd(os.path.join(lab_dir, "slapd"), port=args.ldap_port, host=args.host,
                  tls=not args.no_tls, require_tls=args.require_tls)
    kdc = None if args.no_kdc else Kdc(os.path.join(lab_dir, "kdc"), port=args.kdc_port,
                                       host=args.host, service_host=args.service_host)
    status = 0
    try:
        t0 = time.monotonic()
        slapd.start()
        if kdc is not None:
            kdc.start()
        write_env(os.path.join(lab_dir, "lab.env"), lab_env(args, slapd, kdc))
        print("lab started in %.2f s: %s, KDC %s; env in %s" % (
            time.monotonic() - t0, slapd.uri,
            "%s:%d" % (kdc.host, kdc.port) if kdc else "off",
            os.path.join(lab_dir, "lab.env")), file=sys.stderr)
        print("lab ready", flush=True)
        while not stop_requested:
            for name, d in (("slapd", slapd), ("krb5kdc", kdc)):
                if d is not None and not d.running:
                    print("run_lab: %s (pid %s) exited unexpectedly; see %s"
                          % (name, d.pid, d.workdir), file=sys.stderr)
                    status = 1
                    stop_requested.append(0)
            time.sleep(0.2)
    except LabError as exc:
        print("run_lab: %s" % exc, file=sys.stderr)
        status = 1
    finally:
        # Ignore further signals while cleaning up, so a second Ctrl-C cannot
        # leave a daemon running.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if kdc is not None:
            kdc.stop()
        slapd.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
