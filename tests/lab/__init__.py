# The directory lab: real OpenLDAP slapd, MIT krb5kdc and Samba AD DC instances for postern's tests.
"""Public API:

    Slapd(workdir, port=None, host="127.0.0.1", tls=False, ...)   tests/lab/slapd.py
    Kdc(workdir, port=None, service_host="mail.example.test", ...)  tests/lab/kdc.py
    SambaDC(workdir, host="127.0.0.12", realm="CORP.EXAMPLE.TEST")  tests/lab/samba.py
    free_port(host="127.0.0.1", udp=False)                          tests/lab/ports.py
    ad      -- SID / FILETIME / GUID / NT-hash codecs               tests/lab/ad.py
    ldif    -- parse ldapsearch output (ldif.parse -> [Entry])      tests/lab/ldif.py
    tls     -- test CA and server certificates (certtool)           tests/lab/tls.py

Run the whole lab by hand with tests/lab/run_lab.py.
"""
from . import ad, ldif, tls
from .daemon import LabError
from .kdc import Kdc
from .ports import free_port
from .samba import SambaDC
from .slapd import PASSWORD, SAMPLE_LDIF, SCHEMA, Slapd

__all__ = ["Slapd", "Kdc", "SambaDC", "free_port", "LabError", "PASSWORD", "SCHEMA", "SAMPLE_LDIF",
           "ad", "ldif", "tls"]
