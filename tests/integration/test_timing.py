"""No oracle in the answer: an unknown user, a blocked account and a wrong password get the
same text after the same delay (FailureDelay pads every refusal to the same moment, counted
from the start of the attempt). Distributions are measured and printed for the issue note."""
import imaplib
import statistics
import threading
import time

from tests.lab import postern

PW = "Demo-Pass-1"
SAMPLES = 12


def attempt(server, ctx, login, password, out):
    m = imaplib.IMAP4_SSL("127.0.0.1", server["imaps"], ssl_context=ctx, timeout=30)
    t0 = time.monotonic()
    try:
        m.login(m._quote(login), password)
        text = "OK"
    except imaplib.IMAP4.error as e:
        text = str(e)
    out.append((time.monotonic() - t0, text))
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def test_refusals_look_alike_in_text_and_time(slapd, server_tls, tls_ctx, make_server):
    d = postern.public_dir("posternd-timing-")
    s = make_server(directory=d, global_extra=postern.directory_block(
        slapd, d, logins="FailureDelay 1s"))
    kinds = {"unknown user": ("nobody-here", PW), "blocked account": ("disabled1", PW),
             "wrong password": ("jdoe", "not-the-password"),
             "privileged (RID 500)": ("Administrator", PW)}
    results = {}
    for kind, (login, password) in kinds.items():
        out = []
        threads = [threading.Thread(target=attempt, args=(s, tls_ctx, login, password, out))
                   for _ in range(SAMPLES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results[kind] = out
    texts = {text for out in results.values() for _, text in out}
    assert len(texts) == 1 and "[AUTHENTICATIONFAILED]" in texts.pop()
    medians = {}
    for kind, out in results.items():
        times = sorted(t for t, _ in out)
        medians[kind] = statistics.median(times)
        print("%-22s n=%d min %.3f median %.3f max %.3f s" % (
            kind, len(times), times[0], medians[kind], times[-1]))
        assert 0.95 < times[0] and times[-1] < 1.6, (kind, times)
    spread = max(medians.values()) - min(medians.values())
    print("spread of the medians: %.1f ms" % (spread * 1000))
    assert spread < 0.1, medians
