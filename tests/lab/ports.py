# Loopback port helpers for the lab: pick unused TCP (and UDP) ports, wait for listeners.
import errno
import socket
import time

# Ports already handed out by this process: two daemons asking before either
# has bound must not get the same number.
_handed_out = set()


def free_port(host="127.0.0.1", udp=False):
    """Return a port on `host` that is free for TCP (and for UDP too if `udp`).

    The port is only known to be free at the time of the call; the daemon
    binds it moments later, which is the usual, tiny race every test lab has.
    A KDC needs both protocols on one number, hence `udp`.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            if port in _handed_out:
                continue
            if udp:
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
                        dgram.bind((host, port))
                except OSError:
                    continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found on %s" % host)


def port_in_use(host, port, udp=False):
    """True if something holds host:port (TCP, or UDP if `udp`) right now."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def tcp_accepts(host, port, timeout=0.2):
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_closed(host, port, timeout=5.0):
    """Wait until nothing accepts on host:port any more; True if it closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not tcp_accepts(host, port):
            return True
        time.sleep(0.02)
    return False
