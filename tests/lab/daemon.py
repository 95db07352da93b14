# Start a lab daemon in the foreground as our own child, wait for it, stop it by PID.
"""Process handling shared by Slapd and Kdc.

Rules the lab keeps (see /work/shared/lab/README.md):
- daemons run in the foreground (slapd -d, krb5kdc -n), so the PID we hold is
  the daemon itself, not a launcher that forked and exited;
- we only ever signal that PID, and we reap it (wait), so no zombie lingers
  and the PID cannot be reused behind our back while we hold the Popen;
- each daemon gets its own session (a terminal's Ctrl-C reaches only the
  Python parent, which then stops the daemons in order), and asks the kernel
  to SIGTERM it if the Python thread that started it dies, so a killed test
  run leaves nothing behind.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import time

_PR_SET_PDEATHSIG = 1

try:  # loaded before any fork: preexec_fn must not do dynamic loading
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):
    _prctl = None


class LabError(RuntimeError):
    """A lab daemon could not be set up, started or stopped."""


class LabDaemon:
    """What every lab daemon class shares: `running`, stop(), and use as a context manager.
    The class keeps its Popen in `_proc` and its directory in `workdir`, and provides start()."""
    _proc = None

    def stop(self, timeout=5.0, remove=False):
        """Stop the daemon by PID (SIGTERM, SIGKILL after `timeout`); delete workdir only if
        asked."""
        stop(self._proc, timeout)
        self._proc = None
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _die_with_parent():
    # Runs in the child between fork and exec.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def log_tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            data = f.read()[-8192:]
    except OSError:
        return "(no log at %s)" % path
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def spawn(argv, log_path, env=None):
    """Start argv with stdout+stderr appended to log_path; return the Popen."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        raise LabError("cannot start %s: %s" % (argv[0], exc)) from exc
    finally:
        log.close()  # the child has its own copy of the descriptor


def wait_ready(proc, ready, what, log_path, timeout=10.0, interval=0.01):
    """Poll ready() until true; fail early, with the log, if the daemon exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError("%s exited with status %s during start-up; log:\n%s"
                           % (what, proc.returncode, log_tail(log_path)))
        if ready():
            return
        if time.monotonic() > deadline:
            stop(proc)
            raise LabError("%s not ready after %.1f s; log:\n%s"
                           % (what, timeout, log_tail(log_path)))
        time.sleep(interval)


def stop(proc, timeout=5.0):
    """SIGTERM the daemon by PID, wait; SIGKILL if it outlives `timeout`.

    Returns the exit status. Safe to call twice or on a daemon that died.
    """
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def run(argv, env=None, input=None, check=True, what=None, timeout=30):
    """Run a short helper command (ldapadd, kadmin.local ...) and capture its output."""
    try:
        done = subprocess.run(argv, input=input, env=env, capture_output=True,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise LabError("%s not found: is its Debian package installed?" % argv[0]) from exc
    if check and done.returncode != 0:
        raise LabError("%s failed (status %d):\n%s%s" % (
            what or argv[0], done.returncode,
            done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")))
    return done
