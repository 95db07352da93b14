#!/bin/sh
# Installs every Debian package postern needs to build, lint, fuzz and test (idempotent:
# nothing is downloaded when everything is there). Run as root, e.g. through `make deps`.
set -eu

PACKAGES="
gcc make pkg-config
libevent-dev libgnutls28-dev libldap-dev libkrb5-dev libgsasl-dev libcmocka-dev
libsqlite3-dev libgmime-3.0-dev libsasl2-dev libsasl2-modules-gssapi-mit libjansson-dev
clang libclang-rt-14-dev clang-tidy clang-format cppcheck
gnutls-bin openssl curl fetchmail
isync mutt dnsmasq-base dovecot-imapd dovecot-pop3d dovecot-ldap
slapd ldap-utils krb5-kdc krb5-admin-server krb5-user
samba samba-ad-dc samba-ad-provision samba-dsdb-modules python3-samba winbind ldb-tools
python3 python3-pytest python3-gssapi python3-ntlm-auth gsasl adcli faketime
iproute2 procps valgrind
"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *" installed") ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "make deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "make deps: run as root (or install the packages above yourself)" >&2
    exit 1
fi
# Package scripts must not start system-wide slapd, krb5kdc or samba/smbd/nmbd/winbind: tests
# start their own on loopback. policy-rc.d (exit 101) tells invoke-rc.d not to start services.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
fi
cleanup() { if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists are stale: update, then install.
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
