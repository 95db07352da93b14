/* Typed parsers for the arguments of IMAP commands after login (RFC 3501 §6.3-6.4, §9 and the
 * extensions named below): sequence sets, FETCH, STORE, APPEND, SEARCH with an evaluator,
 * STATUS, ENABLE, mailbox names in modified UTF-7 and LIST patterns.
 *
 * The parsers take the `struct imap_arg` values of imap_parse_command() and return typed
 * structures. A refusal is `false` (or SEARCH_BAD) with *error set to a static English text
 * for a "BAD" response; no client byte is ever part of an error text. docs/imap-args.md
 * lists what each parser accepts and refuses and its limits. */
#ifndef POSTERN_IMAP_ARGS_H
#define POSTERN_IMAP_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postern/imap.h"

/* ---- sequence sets (RFC 3501 §9 sequence-set; RFC 5182 "$") ---- */

/* Ranges kept after merging; a set that stays larger than this is refused. */
#define SEQSET_MAX_RANGES 4096

struct seq_range {
    uint32_t lo, hi; /* lo <= hi */
};

/* The numbers of a set as sorted, disjoint, non-adjacent ranges. A "*" is kept aside until
 * seqset_resolve() knows the largest number in use: all the parts that name "*" together
 * cover [min(star_lo, max), max(star_hi, max)] (a bare "*" has no bounds). */
struct seqset {
    struct seq_range *ranges;
    size_t n_ranges;
    bool last_result; /* "$": the saved SEARCH result (RFC 5182); no ranges then */
    bool star;        /* a "*" still to be resolved */
    bool star_bounded;
    uint32_t star_lo, star_hi;
};

/* Parses text[0..len) ("1,3:5,7:*", "*", "$"). Refused: 0, numbers above 2^32-1, leading
 * zeros, empty parts, "$" combined with anything, more than SEQSET_MAX_RANGES ranges. */
bool seqset_parse(const char *text, size_t len, struct seqset *set, const char **error);
/* The same for an argument, which must be an atom. */
bool seqset_parse_arg(const struct imap_arg *arg, struct seqset *set, const char **error);
/* Replaces "*" by max, the largest sequence number or UID in use; in an empty mailbox
 * (max 0) the parts that name "*" ("*", "n:*") name nothing. Call once. */
void seqset_resolve(struct seqset *set, uint32_t max);
/* Membership in the ranges; an unresolved "*" matches nothing. */
bool seqset_contains(const struct seqset *set, uint32_t n);
uint64_t seqset_count(const struct seqset *set);
/* Adds lo..hi (either order) to a set built by the server, e.g. a SEARCH result. */
void seqset_add(struct seqset *set, uint32_t lo, uint32_t hi);
/* "1:3,5", with an unresolved "*" as "n:*" parts, "$" as "$"; malloc'd. */
char *seqset_format(const struct seqset *set);
void seqset_free(struct seqset *set);

/* for (seqset_iter_init(&it); seqset_next(set, &it, &n);) visits the numbers in order. */
struct seqset_iter {
    size_t range;
    uint64_t next;
};
void seqset_iter_init(struct seqset_iter *it);
bool seqset_next(const struct seqset *set, struct seqset_iter *it, uint32_t *n);

/* ---- flags (RFC 3501 §2.3.2, flag / flag-list / flag-keyword) ---- */

enum imap_flag {
    IMAP_FLAG_SEEN = 1u << 0,
    IMAP_FLAG_ANSWERED = 1u << 1,
    IMAP_FLAG_FLAGGED = 1u << 2,
    IMAP_FLAG_DELETED = 1u << 3,
    IMAP_FLAG_DRAFT = 1u << 4,
    IMAP_FLAG_RECENT = 1u << 5, /* searchable and fetchable, never stored by a client */
};

#define IMAP_MAX_FLAGS 256       /* flags in one STORE or APPEND */
#define IMAP_MAX_KEYWORD_LEN 100 /* bytes of one keyword */

struct flag_list {
    unsigned system; /* enum imap_flag bits, without IMAP_FLAG_RECENT */
    char **keywords; /* as first spelled; duplicates (compared case-insensitively) dropped */
    size_t n_keywords;
};

/* "\Seen" for IMAP_FLAG_SEEN etc.; NULL for anything that is not exactly one flag. */
const char *imap_flag_name(unsigned flag);
/* A keyword is an atom of RFC 3501 ATOM-CHARs (no "\"), at most IMAP_MAX_KEYWORD_LEN. */
bool imap_keyword_valid(const char *s, size_t len);
/* n flags, each an atom; "\Recent" and unknown "\" flags are refused. */
bool flag_list_parse(const struct imap_arg *flags, size_t n, struct flag_list *out,
                     const char **error);
void flag_list_free(struct flag_list *flags);

/* ---- STORE (RFC 3501 §6.4.6; UNCHANGEDSINCE from RFC 7162 §3.1.3) ---- */

enum store_mode { STORE_REPLACE, STORE_ADD, STORE_REMOVE };

struct store_request {
    enum store_mode mode;
    bool silent;
    struct flag_list flags;
    bool has_unchangedsince;
    uint64_t unchangedsince;
};

/* args: what follows the sequence set: [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] and a flag
 * list or one or more flags. */
bool store_parse(const struct imap_arg *args, size_t n, struct store_request *out,
                 const char **error);
void store_request_free(struct store_request *req);

/* ---- dates (RFC 3501 §9 date, date-time) ---- */

struct imap_datetime {
    int64_t utc;      /* seconds since 1970-01-01T00:00:00Z */
    int zone_minutes; /* the offset the client gave, -1439..1439 */
};

#define IMAP_DATETIME_LEN 26 /* "dd-Mon-yyyy hh:mm:ss +zzzz" */

/* date-time without its quotes: "22-Nov-2026 09:26:20 +0000", " 2-Feb-2026 ...". */
bool imap_datetime_parse(const char *s, size_t len, struct imap_datetime *out);
/* The INTERNALDATE form, space-padded day; out must hold IMAP_DATETIME_LEN + 1 bytes. */
void imap_datetime_format(const struct imap_datetime *dt, char *out);
/* date-text "1-Feb-1994" or "01-Feb-1994" as days since 1970-01-01. */
bool imap_date_parse(const char *s, size_t len, int64_t *day);
/* The calendar day of a moment as seen in the given zone, in days since 1970-01-01. */
int64_t imap_day_of(int64_t utc, int zone_minutes);

/* ---- APPEND (RFC 3501 §6.3.11; RFC 3502 MULTIAPPEND) ---- */

struct append_message {
    bool has_flags;
    struct flag_list flags;
    bool has_date;
    struct imap_datetime date;
    const char *data; /* the literal, inside the parsed command: valid while it lives */
    size_t len;
};

/* Parses one message, [flag-list] [date-time] literal, from args[0..n) (what follows the
 * mailbox name, or the previous message for MULTIAPPEND); *used says how many arguments it
 * took, so a MULTIAPPEND loop continues at args + *used. */
bool append_parse(const struct imap_arg *args, size_t n, size_t *used, struct append_message *out,
                  const char **error);
void append_message_free(struct append_message *msg);

/* ---- FETCH (RFC 3501 §6.4.5; BINARY RFC 3516; MODSEQ, CHANGEDSINCE RFC 7162) ---- */

enum fetch_item {
    FETCH_ENVELOPE,
    FETCH_FLAGS,
    FETCH_INTERNALDATE,
    FETCH_RFC822, /* = BODY[], sets \Seen */
    FETCH_RFC822_HEADER,
    FETCH_RFC822_SIZE,
    FETCH_RFC822_TEXT, /* = BODY[TEXT], sets \Seen */
    FETCH_BODY,        /* the non-extensible BODYSTRUCTURE */
    FETCH_BODYSTRUCTURE,
    FETCH_UID,
    FETCH_BODY_SECTION, /* BODY[...] and BODY.PEEK[...] */
    FETCH_BINARY,       /* BINARY[...] and BINARY.PEEK[...] */
    FETCH_BINARY_SIZE,
    FETCH_MODSEQ,
};

enum fetch_section_text {
    SECTION_WHOLE, /* BODY[] or BODY[1.2]: the message or the part */
    SECTION_HEADER,
    SECTION_HEADER_FIELDS,
    SECTION_HEADER_FIELDS_NOT,
    SECTION_TEXT,
    SECTION_MIME, /* only after a part number */
};

#define FETCH_MAX_PART_DEPTH 32     /* numbers in 1.2.3... */
#define FETCH_MAX_HEADER_FIELDS 256 /* names in one HEADER.FIELDS list */
#define FETCH_MAX_FIELD_LEN 256     /* bytes of one header field name */
#define FETCH_MAX_ATTS 512          /* attributes in one FETCH */

struct fetch_section {
    uint32_t parts[FETCH_MAX_PART_DEPTH];
    size_t n_parts;
    enum fetch_section_text text;
    char **fields; /* HEADER.FIELDS[.NOT], as the client spelled them */
    size_t n_fields;
};

struct fetch_att {
    enum fetch_item item;
    bool peek; /* BODY.PEEK, BINARY.PEEK */
    struct fetch_section section;
    bool has_partial;
    uint32_t origin, count; /* <origin.count>; origin + count may exceed 2^32-1 */
};

struct fetch_request {
    struct fetch_att *atts; /* macros (ALL, FAST, FULL) expanded */
    size_t n_atts;
    bool has_changedsince;
    uint64_t changedsince;
    bool vanished; /* QRESYNC (RFC 7162 §3.2.6): allowed only with UID FETCH and CHANGEDSINCE */
};

/* args: what follows the sequence set, as imap_parse_command() gave it. */
bool fetch_parse(const struct imap_arg *args, size_t n, struct fetch_request *out,
                 const char **error);
/* The same grammar on the raw command text after the sequence set (no line end), for the
 * forms imap_parse_command() cannot represent: header field names as quoted strings or
 * literals inside a section, BODY[HEADER.FIELDS ("From" {2}\r\nTo)]. */
bool fetch_parse_text(const char *text, size_t len, struct fetch_request *out, const char **error);
/* True when the request sets \Seen (RFC 3501 §6.4.5: BODY[...], BINARY[...], RFC822,
 * RFC822.TEXT without .PEEK). */
bool fetch_sets_seen(const struct fetch_request *req);
/* The name the server echoes in the FETCH response: BODY.PEEK[...] as BODY[...], the partial
 * as its origin only ("BODY[HEADER.FIELDS (FROM TO)]<0>", RFC 3501 §7.4.2). malloc'd. */
char *fetch_att_name(const struct fetch_att *att);
void fetch_request_free(struct fetch_request *req);

/* Where the text after the first `words` space-separated words of an assembled command starts
 * ("a UID FETCH 1:5 " is 4 words) and how long it is without the line end; false if the
 * command has fewer words. For fetch_parse_text(). */
bool imap_command_rest(const char *buf, size_t len, size_t words, const char **rest,
                       size_t *rest_len);

/* ---- SEARCH (RFC 3501 §6.4.4; ESEARCH RETURN RFC 4731; SAVE RFC 5182; MODSEQ RFC 7162) ---- */

#define SEARCH_MAX_DEPTH 100 /* NOT, OR and parentheses inside each other */

enum search_key_type {
    SEARCH_ALL,
    SEARCH_AND, /* children: a parenthesised list, or the whole program */
    SEARCH_OR,  /* two children */
    SEARCH_NOT, /* one child; also UNSEEN = NOT SEEN, OLD = NOT RECENT, UNKEYWORD */
    SEARCH_SEQSET,
    SEARCH_UID,
    SEARCH_FLAG,    /* flag: one enum imap_flag (NEW = AND(RECENT, NOT SEEN)) */
    SEARCH_KEYWORD, /* keyword */
    SEARCH_BEFORE,  /* day compared with internal date or sent date (field) */
    SEARCH_ON,
    SEARCH_SINCE,
    SEARCH_LARGER, /* number: RFC822.SIZE */
    SEARCH_SMALLER,
    SEARCH_HEADER, /* header (field name), needle; FROM, TO, CC, BCC, SUBJECT too */
    SEARCH_BODY,   /* needle */
    SEARCH_TEXT,   /* needle */
    SEARCH_MODSEQ, /* number: mod-sequence at least this */
};

enum search_date_field { SEARCH_DATE_INTERNAL, SEARCH_DATE_SENT };

/* A string to look for: the text as sent and its case-folded code points (see search_fold). */
struct search_string {
    char *text;
    size_t len;
    uint32_t *folded;
    size_t n_folded;
    size_t *next; /* Knuth-Morris-Pratt failure table over folded */
};

struct search_key {
    enum search_key_type type;
    struct search_key *children;
    size_t n_children;
    struct seqset set;
    unsigned flag;
    char *keyword;
    char *header;
    struct search_string needle;
    enum search_date_field field;
    int64_t day;
    uint64_t number;
};

enum search_charset { SEARCH_CHARSET_DEFAULT, SEARCH_CHARSET_UTF8, SEARCH_CHARSET_US_ASCII };

enum search_return {
    SEARCH_RETURN_MIN = 1u << 0,
    SEARCH_RETURN_MAX = 1u << 1,
    SEARCH_RETURN_ALL = 1u << 2,
    SEARCH_RETURN_COUNT = 1u << 3,
    SEARCH_RETURN_SAVE = 1u << 4,
};

struct search_program {
    struct search_key root; /* SEARCH_AND of the keys */
    enum search_charset charset;
    bool esearch;          /* RETURN given: answer with ESEARCH (RFC 4731) */
    unsigned returns;      /* enum search_return bits; RETURN () means ALL */
    bool uses_last_result; /* "$" somewhere (RFC 5182) */
    bool uses_modseq;      /* a MODSEQ key: the response carries (MODSEQ n) (RFC 7162) */
};

enum search_status {
    SEARCH_OK,
    SEARCH_BAD,        /* answer BAD with *error */
    SEARCH_BADCHARSET, /* answer NO [BADCHARSET (UTF-8 US-ASCII)] */
};

/* args: what follows SEARCH (or UID SEARCH). */
enum search_status search_parse(const struct imap_arg *args, size_t n, struct search_program *out,
                                const char **error);
/* Resolves "*" in sequence sets and UID sets (seqset_resolve). Call once, before search_eval. */
void search_resolve(struct search_program *prog, uint32_t max_seq, uint32_t max_uid);
void search_program_free(struct search_program *prog);

enum search_text_part {
    SEARCH_PART_BODY, /* the body of the message (BODY) */
    SEARCH_PART_TEXT, /* header and body (TEXT) */
};

/* What the evaluator knows of one message; the caller fills it. Strings are UTF-8. */
struct search_message {
    uint32_t seq, uid;
    unsigned flags; /* enum imap_flag bits, IMAP_FLAG_RECENT included */
    const char *const *keywords;
    size_t n_keywords;
    uint64_t size;        /* RFC822.SIZE */
    int64_t internal_day; /* imap_day_of(internal date, its zone) */
    bool has_sent_day;    /* false without a usable Date: header: SENT* keys then never match */
    int64_t sent_day;     /* imap_day_of(Date: header, its zone) */
    uint64_t modseq;
    bool in_last_result; /* member of the saved result "$" */
    /* The index-th field of that name (case-insensitive), unfolded and decoded; NULL after
     * the last. BCC, CC, FROM, SUBJECT, TO and HEADER use it. */
    const char *(*header)(const struct search_message *m, const char *name, size_t index);
    /* Whether the part contains the needle; search_string_find() and struct search_scan
     * do the matching. */
    bool (*contains)(const struct search_message *m, enum search_text_part part,
                     const struct search_string *needle);
    void *ctx; /* for the callbacks */
};

bool search_eval(const struct search_program *prog, const struct search_message *m);

/* Case-insensitive substring search on UTF-8 (see search_fold); invalid UTF-8 bytes match
 * only themselves. An empty needle is found everywhere. */
bool search_string_find(const struct search_string *needle, const char *hay, size_t len);
/* The simple case folding used for matching: ASCII, Latin-1, Latin Extended-A, Greek and
 * Cyrillic capitals to small letters; everything else unchanged. */
uint32_t search_fold(uint32_t cp);
/* Prepares a needle from text[0..len) (search_parse does it for its keys). */
void search_string_init(struct search_string *s, const char *text, size_t len);
void search_string_free(struct search_string *s);

/* The same search over data that arrives in pieces (a body read in blocks). */
struct search_scan {
    const struct search_string *needle;
    size_t matched;
    unsigned char pending[4]; /* a UTF-8 sequence cut by the end of a piece */
    size_t n_pending;
    bool found;
};
void search_scan_init(struct search_scan *scan, const struct search_string *needle);
/* Returns true once the needle has been found (and ignores further data). */
bool search_scan_feed(struct search_scan *scan, const char *data, size_t len);
bool search_scan_end(struct search_scan *scan);

/* ---- STATUS (RFC 3501 §6.3.10; SIZE RFC 8438; HIGHESTMODSEQ RFC 7162; DELETED RFC 9051) ---- */

enum status_item {
    STATUS_MESSAGES = 1u << 0,
    STATUS_RECENT = 1u << 1,
    STATUS_UIDNEXT = 1u << 2,
    STATUS_UIDVALIDITY = 1u << 3,
    STATUS_UNSEEN = 1u << 4,
    STATUS_SIZE = 1u << 5,
    STATUS_HIGHESTMODSEQ = 1u << 6,
    STATUS_DELETED = 1u << 7,
};

/* list: the parenthesised, non-empty item list. */
bool status_parse(const struct imap_arg *list, unsigned *items, const char **error);
const char *status_item_name(unsigned item);

/* ---- ENABLE (RFC 5161) ---- */

enum imap_extension {
    IMAP_EXT_CONDSTORE = 1u << 0,
    IMAP_EXT_QRESYNC = 1u << 1,
    IMAP_EXT_UTF8_ACCEPT = 1u << 2,
    IMAP_EXT_IMAP4REV2 = 1u << 3,
};

/* args: one or more capability names (atoms). Names this table does not know are ignored, as
 * RFC 5161 §3.1 asks; *requested gets the known ones. */
bool enable_parse(const struct imap_arg *args, size_t n, unsigned *requested, const char **error);
const char *imap_extension_name(unsigned ext);

/* ---- mailbox names (RFC 3501 §5.1, §5.1.3 modified UTF-7) ---- */

#define MAILBOX_NAME_MAX 1024 /* bytes of UTF-8 */

/* Strict modified UTF-7 to UTF-8: only printable ASCII, "&-" for "&", base64 runs closed by
 * "-" holding valid UTF-16 with no printable ASCII and no padding bits, no "-&" null shift.
 * U+0000 is refused. *utf8 is malloc'd. */
bool mutf7_decode(const char *in, size_t len, char **utf8, const char **error);
/* Valid UTF-8 (no NUL, no surrogates, shortest form) to modified UTF-7; malloc'd. */
bool mutf7_encode(const char *utf8, size_t len, char **out, const char **error);
bool utf8_valid(const char *s, size_t len);

/* A mailbox argument (astring) to its UTF-8 name: modified UTF-7 decoded (raw UTF-8 instead
 * once UTF8=ACCEPT is enabled, RFC 6855 §3), control characters and names longer than
 * MAILBOX_NAME_MAX refused, INBOX normalised (mailbox_name_normalise_inbox). */
bool mailbox_name_parse(const struct imap_arg *arg, char delim, bool utf8_accept, char **name,
                        const char **error);
/* "inbox" (any case) becomes "INBOX", and so does that first level of "inbox<delim>child". */
void mailbox_name_normalise_inbox(char *name, char delim);

/* ---- LIST and LSUB patterns (RFC 3501 §6.3.8) ---- */

#define LIST_PATTERN_MAX 1024 /* bytes of a combined pattern */

/* The pattern the server matches: pattern alone when it begins with the delimiter, otherwise
 * reference followed by pattern. malloc'd. */
char *list_pattern_combine(const char *reference, const char *pattern, char delim);

/* A compiled pattern: "*" matches anything, "%" anything but the delimiter. Matching keeps
 * the set of pattern positions alive (no backtracking): time is length of name x pattern/64.
 * The INBOX level of a name matches case-insensitively. */
struct list_pattern;
struct list_pattern *list_pattern_new(const char *pattern, char delim, const char **error);
bool list_pattern_match(const struct list_pattern *p, const char *name);
/* Whether some name below name (name, delimiter, more) could match: worth descending into. */
bool list_pattern_match_children(const struct list_pattern *p, const char *name);
void list_pattern_free(struct list_pattern *p);

#endif
