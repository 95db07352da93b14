/* Blocked accounts (POLICY.md §3) and Exchange's per-protocol switch (§4) as one decision. */
#include "postern/account_policy.h"

#include <string.h>

#include "postern/util.h"

/* userAccountControl bits (MS-ADTS 2.2.16) */
#define UAC_ACCOUNTDISABLE 0x2u
#define UAC_LOCKOUT 0x10u
#define UAC_WORKSTATION_TRUST 0x1000u
#define UAC_SERVER_TRUST 0x2000u
#define UAC_DONT_EXPIRE_PASSWD 0x10000u
#define UAC_PASSWORD_EXPIRED 0x800000u

int64_t filetime_from_unix(int64_t seconds)
{
    return (seconds + 11644473600LL) * 10000000LL;
}

/* Exchange's protocolSettings: "POP3§0§..." or "IMAP4§0§..." switches the protocol off; the
 * first field after the name is the enable flag, a missing value means enabled (TECHNOTES §5).
 * § is U+00A7, "\xc2\xa7" in UTF-8. */
static bool protocol_disabled(const struct account *a, enum protocol p)
{
    const char *name = p == PROTOCOL_IMAP ? "IMAP4\xc2\xa7" : "POP3\xc2\xa7";
    size_t nl = strlen(name);
    for (size_t i = 0; i < a->n_protocol_settings; i++) {
        const char *v = a->protocol_settings[i];
        if (ascii_ncasecmp(v, name, nl) == 0 && v[nl] == '0')
            return true;
    }
    return false;
}

enum auth_reason account_blocked(const struct account *a, enum protocol protocol,
                                 bool block_privileged, const char *const *privileged_groups,
                                 size_t n_privileged_groups, int64_t now_filetime)
{
    /* The built-in accounts by RID, whatever they were renamed to (MS-DTYP 2.4.2.4). */
    if (a->has_sid) {
        switch (a->rid) {
        case 500:
            return AUTH_REASON_BUILTIN_ADMINISTRATOR;
        case 501:
            return AUTH_REASON_GUEST_ACCOUNT;
        case 502:
            return AUTH_REASON_KRBTGT_ACCOUNT;
        case 503:
            return AUTH_REASON_DEFAULT_ACCOUNT;
        default:
            break;
        }
    }
    uint32_t uac = a->has_uac ? a->user_account_control : 0;
    if (a->is_computer || (uac & (UAC_WORKSTATION_TRUST | UAC_SERVER_TRUST)))
        return AUTH_REASON_COMPUTER_ACCOUNT;
    if (uac & UAC_ACCOUNTDISABLE)
        return AUTH_REASON_ACCOUNT_DISABLED;
    /* Since Windows Server 2003 lockout and password expiry live in the constructed
     * msDS-User-Account-Control-Computed, not in userAccountControl (TECHNOTES §5). */
    uint32_t computed = a->has_uac_computed ? a->uac_computed : 0;
    if ((computed & UAC_LOCKOUT) || (uac & UAC_LOCKOUT) ||
        (!a->has_uac_computed && a->lockout_time != 0))
        return AUTH_REASON_ACCOUNT_LOCKED;
    if (a->account_expires != 0 && a->account_expires != INT64_MAX &&
        a->account_expires <= now_filetime)
        return AUTH_REASON_ACCOUNT_EXPIRED;
    /* pwdLastSet = 0 means "must change at next logon" unless the password never expires. */
    if (a->has_pwd_last_set && a->pwd_last_set == 0 && !(uac & UAC_DONT_EXPIRE_PASSWD))
        return AUTH_REASON_PASSWORD_MUST_CHANGE;
    if ((computed | uac) & UAC_PASSWORD_EXPIRED)
        return AUTH_REASON_PASSWORD_EXPIRED;
    if (block_privileged) {
        /* AD lists no memberOf for the primary group: an account whose primary group is
         * Domain Admins (512), Schema Admins (518) or Enterprise Admins (519) is found here. */
        if (a->admin_count == 1 || a->primary_group_rid == 512 || a->primary_group_rid == 518 ||
            a->primary_group_rid == 519)
            return AUTH_REASON_PRIVILEGED_ACCOUNT;
        for (size_t i = 0; i < a->n_member_of; i++)
            for (size_t j = 0; j < n_privileged_groups; j++)
                if (ascii_casecmp(a->member_of[i], privileged_groups[j]) == 0)
                    return AUTH_REASON_PRIVILEGED_ACCOUNT;
    }
    if (protocol_disabled(a, protocol))
        return AUTH_REASON_PROTOCOL_DISABLED;
    return AUTH_REASON_NONE;
}
