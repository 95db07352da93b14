# Small C programs in tests/tools/ (dirprobe, mimeprobe) built against the libpostern.a under
# test, so that integration tests can drive one module directly.
import os
import shutil
import subprocess

import pytest

from tests.lab.postern import ROOT

# what the Makefile links (PKGS and LIBS there)
PKGS = ("libevent libevent_pthreads gnutls ldap krb5-gssapi krb5 libgsasl sqlite3 gmime-3.0 "
        "jansson").split()
WARN = ("-Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wformat=2 "
        "-Wno-format-nonliteral").split()


def library(env_name):
    """The libpostern.a next to $POSTERND (or $<env_name>, or build/): the build under test."""
    candidates = [os.environ.get(env_name)]
    if os.environ.get("POSTERND"):
        candidates.append(os.path.join(os.path.dirname(os.environ["POSTERND"]), "libpostern.a"))
    candidates.append(os.path.join(ROOT, "build", "libpostern.a"))
    for c in candidates:
        if c and os.path.exists(c):
            return c
    pytest.skip("libpostern.a not built (run make first)")


def build_tool(name, out_dir, env_name):
    """Compiles tests/tools/<name>.c into out_dir/<name>; skips without a compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which("pkg-config") is None:
        pytest.skip("no C compiler or pkg-config")
    lib = library(env_name)
    out = os.path.join(str(out_dir), name)
    pc = subprocess.run(["pkg-config", "--cflags", "--libs"] + PKGS, capture_output=True,
                        text=True, check=True).stdout.split()
    base = [cc, "-std=gnu11", "-O1", "-g", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "include")]
    base += WARN + ["-o", out, os.path.join(ROOT, "tests", "tools", name + ".c"), lib]
    base += pc + ["-llber", "-lresolv", "-lpthread"]
    done = subprocess.run(base, capture_output=True, text=True)
    if done.returncode != 0:
        # a SANITIZE=1 library needs the sanitizer runtimes at link time
        done = subprocess.run(base + ["-fsanitize=address,undefined"], capture_output=True,
                              text=True)
    assert done.returncode == 0, done.stderr
    return out
