/* Unit tests of the directory value decoders: SID, GUID, int64, AD sub-codes, filter escaping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "postern/directory.h"

/* Not part of the public API: entryUUID normalisation, shared by the client and values.c. */
#include "../../src/directory/internal.h"

/* objectSid of the sample Administrator (schema/sample.ldif), i.e. what AD sends on the wire. */
static const unsigned char ADMINISTRATOR_SID[] = {
    0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0xdc, 0xf4,
    0xdc, 0x3b, 0x83, 0x3d, 0x2b, 0x46, 0x82, 0x8b, 0xa6, 0x28, 0xf4, 0x01, 0x00, 0x00};
static const unsigned char JDOE_SID[] = {0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00,
                                         0x00, 0x00, 0xdc, 0xf4, 0xdc, 0x3b, 0x83, 0x3d, 0x2b, 0x46,
                                         0x82, 0x8b, 0xa6, 0x28, 0x50, 0x04, 0x00, 0x00};

static void test_sid_administrator(void **state)
{
    (void)state;
    char text[DIRECTORY_SID_TEXT_MAX];
    uint32_t rid = 0;
    assert_true(directory_parse_sid(ADMINISTRATOR_SID, sizeof(ADMINISTRATOR_SID), text,
                                    sizeof(text), &rid));
    assert_string_equal(text, "S-1-5-21-1004336348-1177238915-682003330-500");
    assert_int_equal(rid, 500);

    assert_true(directory_parse_sid(JDOE_SID, sizeof(JDOE_SID), text, sizeof(text), &rid));
    assert_string_equal(text, "S-1-5-21-1004336348-1177238915-682003330-1104");
    assert_int_equal(rid, 1104);
}

static void test_sid_well_known(void **state)
{
    (void)state;
    char text[DIRECTORY_SID_TEXT_MAX];
    uint32_t rid = 1;
    /* S-1-1-0, Everyone: one sub-authority, which is then the "RID" */
    static const unsigned char everyone[] = {1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_true(directory_parse_sid(everyone, sizeof(everyone), text, sizeof(text), &rid));
    assert_string_equal(text, "S-1-1-0");
    assert_int_equal(rid, 0);
    /* S-1-5-32-544, BUILTIN\Administrators */
    static const unsigned char builtin_admins[] = {1,    2, 0, 0, 0,    0, 0, 5,
                                                   0x20, 0, 0, 0, 0x20, 2, 0, 0};
    assert_true(
        directory_parse_sid(builtin_admins, sizeof(builtin_admins), text, sizeof(text), &rid));
    assert_string_equal(text, "S-1-5-32-544");
    assert_int_equal(rid, 544);
    /* sub-authorities are unsigned 32-bit little-endian */
    static const unsigned char big[] = {1, 1, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff};
    assert_true(directory_parse_sid(big, sizeof(big), text, sizeof(text), &rid));
    assert_string_equal(text, "S-1-5-4294967295");
    assert_int_equal(rid, UINT32_MAX);
    /* MS-DTYP 2.4.2.1: an authority of 2^32 or more is written in hex */
    static const unsigned char hexauth[] = {1, 1, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 7, 0, 0, 0};
    assert_true(directory_parse_sid(hexauth, sizeof(hexauth), text, sizeof(text), &rid));
    assert_string_equal(text, "S-1-0x123456789ABC-7");
}

static void test_sid_maximum_size(void **state)
{
    (void)state;
    /* 15 sub-authorities of 4294967295 and the largest authority: the longest text there is */
    unsigned char sid[8 + 4 * 15];
    memset(sid, 0xff, sizeof(sid));
    sid[0] = 1;
    sid[1] = 15;
    char text[DIRECTORY_SID_TEXT_MAX];
    uint32_t rid = 0;
    assert_true(directory_parse_sid(sid, sizeof(sid), text, sizeof(text), &rid));
    assert_int_equal(strlen(text), DIRECTORY_SID_TEXT_MAX - 1);
    assert_int_equal(rid, UINT32_MAX);
    /* one byte too little room: refused, not truncated */
    assert_false(directory_parse_sid(sid, sizeof(sid), text, sizeof(text) - 1, &rid));
    /* text and rid are optional */
    assert_true(directory_parse_sid(sid, sizeof(sid), NULL, 0, NULL));
}

static void test_sid_malformed(void **state)
{
    (void)state;
    char text[DIRECTORY_SID_TEXT_MAX];
    uint32_t rid = 12345;
    unsigned char sid[sizeof(ADMINISTRATOR_SID) + 4];
    memcpy(sid, ADMINISTRATOR_SID, sizeof(ADMINISTRATOR_SID));
    memset(sid + sizeof(ADMINISTRATOR_SID), 0, 4);

    assert_false(directory_parse_sid(NULL, 0, text, sizeof(text), &rid));
    assert_false(directory_parse_sid(sid, 0, text, sizeof(text), &rid));
    assert_false(directory_parse_sid(sid, 7, text, sizeof(text), &rid));
    /* count says 5 sub-authorities: 28 bytes exactly, neither one less nor one more */
    assert_false(directory_parse_sid(sid, sizeof(ADMINISTRATOR_SID) - 1, text, sizeof(text), &rid));
    assert_false(directory_parse_sid(sid, sizeof(ADMINISTRATOR_SID) + 1, text, sizeof(text), &rid));
    assert_false(directory_parse_sid(sid, sizeof(ADMINISTRATOR_SID) + 4, text, sizeof(text), &rid));
    /* revision must be 1 */
    sid[0] = 2;
    assert_false(directory_parse_sid(sid, sizeof(ADMINISTRATOR_SID), text, sizeof(text), &rid));
    sid[0] = 1;
    /* no sub-authority, so no RID */
    static const unsigned char none[] = {1, 0, 0, 0, 0, 0, 0, 5};
    assert_false(directory_parse_sid(none, sizeof(none), text, sizeof(text), &rid));
    /* more than 15 sub-authorities */
    unsigned char sixteen[8 + 4 * 16] = {1, 16, 0, 0, 0, 0, 0, 5};
    assert_false(directory_parse_sid(sixteen, sizeof(sixteen), text, sizeof(text), &rid));
    /* a refused SID leaves the RID alone */
    assert_int_equal(rid, 12345);
}

static void test_guid_byte_order(void **state)
{
    (void)state;
    char text[DIRECTORY_GUID_TEXT_MAX];
    /* jdoe's objectGUID in sample.ldif ("rym39qJkkVynSl1CVDQN3Q=="): Data1, Data2 and Data3
     * are little-endian on the wire, Data4 is not */
    static const unsigned char jdoe[16] = {0xaf, 0x29, 0xb7, 0xf6, 0xa2, 0x64, 0x91, 0x5c,
                                           0xa7, 0x4a, 0x5d, 0x42, 0x54, 0x34, 0x0d, 0xdd};
    assert_true(directory_format_guid(jdoe, sizeof(jdoe), text, sizeof(text)));
    assert_string_equal(text, "f6b729af-64a2-5c91-a74a-5d4254340ddd");
    /* Microsoft's documentation GUID {6B29FC40-CA47-101B-B31D-00DD010662DA} */
    static const unsigned char ms[16] = {0x40, 0xfc, 0x29, 0x6b, 0x47, 0xca, 0x1b, 0x10,
                                         0xb3, 0x1d, 0x00, 0xdd, 0x01, 0x06, 0x62, 0xda};
    assert_true(directory_format_guid(ms, sizeof(ms), text, sizeof(text)));
    assert_string_equal(text, "6b29fc40-ca47-101b-b31d-00dd010662da");
}

static void test_guid_malformed(void **state)
{
    (void)state;
    char text[DIRECTORY_GUID_TEXT_MAX];
    unsigned char bytes[17] = {0};
    assert_false(directory_format_guid(bytes, 15, text, sizeof(text)));
    assert_false(directory_format_guid(bytes, 17, text, sizeof(text)));
    assert_false(directory_format_guid(NULL, 16, text, sizeof(text)));
    assert_false(directory_format_guid(bytes, 16, text, sizeof(text) - 1));
    assert_true(directory_format_guid(bytes, 16, text, sizeof(text)));
    assert_string_equal(text, "00000000-0000-0000-0000-000000000000");
}

static void test_entry_uuid(void **state)
{
    (void)state;
    char text[DIRECTORY_GUID_TEXT_MAX];
    const char *upper = "F6B729AF-64A2-5C91-A74A-5D4254340DDD";
    assert_true(directory_normalize_uuid(upper, strlen(upper), text, sizeof(text)));
    assert_string_equal(text, "f6b729af-64a2-5c91-a74a-5d4254340ddd");
    static const char *bad[] = {
        "f6b729af64a2-5c91-a74a-5d4254340ddd-", /* hyphens in the wrong places */
        "f6b729af-64a2-5c91-a74a-5d4254340dd",  /* one digit short */
        "f6b729af-64a2-5c91-a74a-5d4254340ddg", /* not hex */
        "{6b729af-64a2-5c91-a74a-5d4254340dd}", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (directory_normalize_uuid(bad[i], strlen(bad[i]), text, sizeof(text)))
            fail_msg("accepted \"%s\"", bad[i]);
    const char *good = "f6b729af-64a2-5c91-a74a-5d4254340ddd";
    assert_false(directory_normalize_uuid(good, strlen(good), text, sizeof(text) - 1));
}

static bool int64_of(const char *text, int64_t *out)
{
    return directory_parse_int64(text, strlen(text), out);
}

static void test_int64_values(void **state)
{
    (void)state;
    int64_t v = -1;
    /* AD's "never" in accountExpires, and a real pwdLastSet */
    assert_true(int64_of("9223372036854775807", &v));
    assert_true(v == INT64_MAX);
    assert_true(int64_of("133497828000000000", &v));
    assert_true(v == INT64_C(133497828000000000));
    assert_true(int64_of("0", &v));
    assert_int_equal(v, 0);
    /* groupType of a global security group is negative on the wire */
    assert_true(int64_of("-2147483646", &v));
    assert_true(v == -2147483646);
    assert_true(int64_of("-9223372036854775808", &v));
    assert_true(v == INT64_MIN);
    assert_true(int64_of("512", &v));
    assert_int_equal(v, 512);
    /* the length counts, not a NUL: "5129" cut to 3 */
    assert_true(directory_parse_int64("5129", 3, &v));
    assert_int_equal(v, 512);
}

static void test_int64_junk(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "-",
                                "+1",
                                " 1",
                                "1 ",
                                "0x10",
                                "1e5",
                                "12a",
                                "--1",
                                "9223372036854775808",
                                "-9223372036854775809",
                                "99999999999999999999999",
                                "1.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 77;
        if (int64_of(bad[i], &v))
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(v, 77);
    }
    int64_t v;
    assert_false(directory_parse_int64(NULL, 0, &v));
    /* an embedded NUL is junk too */
    assert_false(directory_parse_int64("1\0002", 3, &v));
}

static void test_ad_subcodes(void **state)
{
    (void)state;
    /* the diagnostic texts of AD (Windows Server 2016+) for each documented reason */
    static const struct {
        const char *text;
        unsigned code;
    } cases[] = {
        {"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1",
         0x52e},
        {"80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 533, v3839",
         0x533},
        {"80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 701, v3839",
         0x701},
        {"80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 773, v4563",
         0x773},
        {"80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 775, v3839",
         0x775},
        {"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 525, v1db1",
         0x525},
        {"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 530, v1db1",
         0x530},
        {"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 531, v1db1",
         0x531},
        {"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 532, v1db1",
         0x532},
        /* a line end after it */
        {"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, "
         "v1db1\n",
         0x52e},
        /* upper-case hex and the end of the string */
        {"comment: AcceptSecurityContext error, data 52E", 0x52e},
        {"data 775", 0x775},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (directory_ad_subcode(cases[i].text) != cases[i].code)
            fail_msg("\"%s\" gave 0x%x", cases[i].text, directory_ad_subcode(cases[i].text));
}

static void test_ad_subcode_absent(void **state)
{
    (void)state;
    static const char *none[] = {
        "", /* slapd's 49 has no text */
        "Invalid credentials",
        "data",               /* no value */
        "data ",              /* no value */
        "data xyz",           /* not hex */
        "data 52g",           /* hex that runs into a letter */
        "metadata 52e, v1",   /* not the word "data" */
        "data 123456789, v1", /* more than 32 bits */
        "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, v1db1",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        if (directory_ad_subcode(none[i]) != 0)
            fail_msg("\"%s\" gave 0x%x", none[i], directory_ad_subcode(none[i]));
    assert_int_equal(directory_ad_subcode(NULL), 0);
    /* a later "data " still counts after a false start */
    assert_int_equal(directory_ad_subcode("metadata x, data 533, v1"), 0x533);
}

static void escaped_is(const char *value, size_t len, const char *want)
{
    char *got = directory_escape_filter_value(value, len);
    if (strcmp(got, want) != 0)
        fail_msg("escaped to \"%s\", want \"%s\"", got, want);
    free(got);
}

static void test_escape_specials(void **state)
{
    (void)state;
    escaped_is("jdoe", 4, "jdoe");
    escaped_is("*", 1, "\\2a");
    /* TECHNOTES §4's injection example */
    escaped_is("a*)(uid=*", 9, "a\\2a\\29\\28uid=\\2a");
    escaped_is("CORP\\jdoe", 9, "CORP\\5cjdoe");
    escaped_is("a\0b", 3, "a\\00b");
    escaped_is("", 0, "");
    escaped_is(NULL, 0, "");
    /* only the five must be escaped; the rest of ASCII stays */
    escaped_is("john.doe+x@example.test =~<>&|!", 31, "john.doe+x@example.test =~<>&|!");
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* valid UTF-8 stays as it is: "Jürgen", "§" (protocolSettings), "日本", U+1F600 */
    escaped_is("J\xc3\xbcrgen", 7, "J\xc3\xbcrgen");
    escaped_is("POP3\xc2\xa7"
               "0",
               7,
               "POP3\xc2\xa7"
               "0");
    escaped_is("\xe6\x97\xa5\xe6\x9c\xac", 6, "\xe6\x97\xa5\xe6\x9c\xac");
    escaped_is("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
    /* bytes that are not UTF-8 are escaped, so the filter stays valid UTF-8 */
    escaped_is("\xff", 1, "\\ff");
    escaped_is("J\xfcrgen", 6, "J\\fcrgen");               /* Latin-1 */
    escaped_is("\xc3", 1, "\\c3");                         /* truncated sequence */
    escaped_is("\xc0\xaf", 2, "\\c0\\af");                 /* overlong '/' */
    escaped_is("\xed\xa0\x80", 3, "\\ed\\a0\\80");         /* surrogate */
    escaped_is("\xf4\x90\x80\x80", 4, "\\f4\\90\\80\\80"); /* above U+10FFFF */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sid_administrator), cmocka_unit_test(test_sid_well_known),
        cmocka_unit_test(test_sid_maximum_size),  cmocka_unit_test(test_sid_malformed),
        cmocka_unit_test(test_guid_byte_order),   cmocka_unit_test(test_guid_malformed),
        cmocka_unit_test(test_entry_uuid),        cmocka_unit_test(test_int64_values),
        cmocka_unit_test(test_int64_junk),        cmocka_unit_test(test_ad_subcodes),
        cmocka_unit_test(test_ad_subcode_absent), cmocka_unit_test(test_escape_specials),
        cmocka_unit_test(test_escape_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
