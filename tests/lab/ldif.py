# Minimal LDIF reader for `ldapsearch -LLL` output and schema/sample.ldif (RFC 2849 content records).
import base64


class Entry:
    """One LDIF record: a DN plus attributes with case-insensitive names.

    Values are kept as bytes, because objectSid/objectGUID are binary; use
    text()/first() for the string attributes.
    """

    def __init__(self, dn):
        self.dn = dn
        self._attrs = {}   # lower-case name -> (name as written, [bytes])

    def add(self, name, value):
        self._attrs.setdefault(name.lower(), (name, []))[1].append(value)

    def raw(self, name):
        """All values of `name` as bytes ([] if absent)."""
        return list(self._attrs.get(name.lower(), (name, []))[1])

    def text(self, name):
        """All values of `name` decoded as UTF-8."""
        return [v.decode("utf-8") for v in self.raw(name)]

    def first(self, name, default=None):
        values = self.text(name)
        return values[0] if values else default

    def names(self):
        return [written for written, _ in self._attrs.values()]

    def __contains__(self, name):
        return name.lower() in self._attrs

    def __repr__(self):
        return "Entry(%r, %s)" % (self.dn, sorted(self.names()))


def parse(data):
    """Parse LDIF (bytes or str) into a list of Entry.

    Handles folded lines, `attr:: base64` values and comments; it ignores
    `version:` and does not implement change records or `attr:< URL`.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    entries, current, lines = [], None, []

    # Unfold first: a line starting with one space continues the previous one.
    for raw in data.split(b"\n"):
        raw = raw.rstrip(b"\r")
        if raw.startswith(b" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)

    for line in lines:
        if not line:
            current = None
            continue
        if line.startswith(b"#"):
            continue
        name, sep, rest = line.partition(b":")
        if not sep:
            raise ValueError("bad LDIF line: %r" % line)
        if rest.startswith(b":"):
            value = base64.b64decode(rest[1:].strip())
        elif rest.startswith(b"<"):
            raise ValueError("URL values are not supported: %r" % line)
        else:
            value = rest[1:] if rest.startswith(b" ") else rest
        name = name.decode("ascii")
        if current is None:
            if name.lower() == "version":
                continue
            if name.lower() != "dn":
                raise ValueError("record does not start with dn: %r" % line)
            current = Entry(value.decode("utf-8"))
            entries.append(current)
        else:
            current.add(name, value)
    return entries


def escape_filter_value(value):
    """RFC 4515 escaping for a value placed in a search filter.

    `*`, `(`, `)`, `\\`, NUL and every non-printable or non-ASCII byte become
    \\XX, so a login name of `*` matches nobody.
    """
    if isinstance(value, str):
        value = value.encode("utf-8")
    return "".join("\\%02x" % b if b < 0x20 or b > 0x7e or b in b"*()\\" else chr(b)
                   for b in value)
