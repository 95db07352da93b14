# Active Directory value codecs for the lab: binary SIDs, FILETIMEs, GUIDs, NT and {SSHA} hashes.
"""Pure-stdlib helpers to build and check AD-shaped values.

They exist so tests (and whoever edits schema/sample.ldif) can produce and
decode the same bytes AD puts on the wire, e.g.

    /usr/bin/python3 -c 'from tests.lab import ad; print(ad.sid_b64(ad.DOMAIN_SID, 1120))'
"""
import base64
import datetime
import hashlib
import struct
import uuid

# The sample domain's SID; every account SID in schema/sample.ldif is DOMAIN_SID-RID.
DOMAIN_SID = "S-1-5-21-1004336348-1177238915-682003330"

# userAccountControl bits (MS-ADTS 2.2.16) that postern's policy looks at.
UF_ACCOUNTDISABLE = 0x0002
UF_LOCKOUT = 0x0010
UF_NORMAL_ACCOUNT = 0x0200
UF_WORKSTATION_TRUST_ACCOUNT = 0x1000
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_PASSWORD_EXPIRED = 0x800000

# accountExpires: both 0 and 2^63-1 mean "never" (MS-ADA1 2.1).
NEVER = 0x7FFFFFFFFFFFFFFF

_EPOCH_DELTA = 11644473600  # seconds from 1601-01-01 to 1970-01-01


def sid_to_bytes(sid):
    """'S-1-5-21-a-b-c-rid' -> binary objectSid (MS-DTYP 2.4.2.2).

    Layout: revision(1) | sub-authority count(1) | authority (6, big-endian)
    | sub-authorities (4 each, little-endian). The RID is the last one.
    """
    parts = sid.split("-")
    if parts[0].upper() != "S" or len(parts) < 3:
        raise ValueError("not a SID: %r" % sid)
    revision, authority = int(parts[1]), int(parts[2])
    subs = [int(p) for p in parts[3:]]
    return (struct.pack("<BB", revision, len(subs)) + authority.to_bytes(6, "big")
            + b"".join(struct.pack("<I", s) for s in subs))


def sid_from_bytes(raw):
    """Binary objectSid -> 'S-1-...' string; rejects truncated input."""
    if len(raw) < 8:
        raise ValueError("SID too short")
    revision, count = raw[0], raw[1]
    if len(raw) != 8 + 4 * count:
        raise ValueError("SID length does not match its sub-authority count")
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack("<%dI" % count, raw[8:])
    return "S-%d-%d" % (revision, authority) + "".join("-%d" % s for s in subs)


def rid_of(raw):
    """RID (last sub-authority) of a binary objectSid."""
    return int(sid_from_bytes(raw).rsplit("-", 1)[1])


def sid_b64(domain_sid, rid):
    """base64 of DOMAIN-RID's binary SID, ready for an `objectSid::` LDIF line."""
    return base64.b64encode(sid_to_bytes("%s-%d" % (domain_sid, rid))).decode()


def fixed_guid(name):
    """16 random-looking bytes that never change for a given name.

    AD sends objectGUID in Microsoft's mixed-endian GUID layout, which is
    Python's uuid.bytes_le; uuid5 keeps test data repeatable.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, "postern-lab:" + name.lower()).bytes_le


def guid_str(raw):
    """Binary objectGUID -> the string form AD tools display."""
    return str(uuid.UUID(bytes_le=bytes(raw)))


def filetime(when):
    """datetime (naive = UTC) -> FILETIME integer (100 ns ticks since 1601)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int((when.timestamp() + _EPOCH_DELTA) * 10_000_000)


def filetime_to_datetime(value):
    """FILETIME integer -> aware UTC datetime; None for AD's "never" values."""
    value = int(value)
    if value in (0, NEVER):
        return None
    return datetime.datetime.fromtimestamp(value / 10_000_000 - _EPOCH_DELTA,
                                           tz=datetime.timezone.utc)


def ssha(password, salt):
    """{SSHA} userPassword value; slapd hashes nothing itself, so the LDIF carries this."""
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def nt_hash(password):
    """NT hash (MD4 of UTF-16LE), upper-case hex as in sambaNTPassword."""
    return _md4(password.encode("utf-16-le")).hex().upper()


def _md4(data):
    # OpenSSL 3 moved MD4 to the legacy provider, so hashlib.new("md4") fails on
    # Debian 12; this is RFC 1320 written out (tested against its vectors).
    try:
        return hashlib.new("md4", data).digest()
    except ValueError:
        pass

    def rol(v, s):
        return ((v << s) | (v >> (32 - s))) & 0xFFFFFFFF

    msg = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        a, b, c, d = h
        for i in range(16):  # round 1: F(x,y,z) = xy | ~x z
            f = (b & c) | (~b & d)
            a, b, c, d = d, rol((a + f + x[i]) & 0xFFFFFFFF, (3, 7, 11, 19)[i % 4]), b, c
        for i in range(16):  # round 2: G = majority, column order
            g = (b & c) | (b & d) | (c & d)
            k = (i % 4) * 4 + i // 4
            a, b, c, d = d, rol((a + g + x[k] + 0x5A827999) & 0xFFFFFFFF, (3, 5, 9, 13)[i % 4]), b, c
        for i in range(16):  # round 3: H = parity, bit-reversed order
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            a, b, c, d = d, rol((a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1) & 0xFFFFFFFF, (3, 9, 11, 15)[i % 4]), b, c
        h = [(p + q) & 0xFFFFFFFF for p, q in zip(h, (a, b, c, d))]
    return struct.pack("<4I", *h)
