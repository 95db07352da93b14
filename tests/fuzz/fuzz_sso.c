/* libFuzzer target: the single sign-on parsers of network bytes. The first byte picks one:
 * SASL base64 (and its round trip), NTLMSSP NEGOTIATE and AUTHENTICATE, ntlm_auth reply lines,
 * the RFC 4752 layer choice, the ticket's service name in a GSS-API AP-REQ, and local NTLMv2
 * verification of an AUTHENTICATE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postern/sso.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const unsigned char *in = data + 1;
    size_t len = size - 1;
    switch (data[0] % 7) {
    case 0: {
        unsigned char *out;
        size_t outlen;
        if (sasl_b64_decode((const char *)in, len, &out, &outlen)) {
            /* what decodes encodes back to the same text: the alphabet is strict */
            char *back = sasl_b64_encode(out, outlen);
            if (strlen(back) != len || memcmp(back, in, len) != 0)
                abort();
            free(back);
            free(out);
        }
        char *enc = sasl_b64_encode(in, len);
        if (!sasl_b64_decode(enc, strlen(enc), &out, &outlen) || outlen != len ||
            memcmp(out, in, len) != 0)
            abort();
        free(out);
        free(enc);
        break;
    }
    case 1:
        (void)ntlm_parse_negotiate(in, len);
        break;
    case 2: {
        struct ntlm_authenticate a;
        if (ntlm_parse_authenticate(in, len, &a)) {
            /* names are text: no NUL inside, valid for the audit trail; UTF-16 becomes up to
             * 3 UTF-8 bytes per 2-byte unit (corpus/sso/utf16_to_utf8_grows) */
            if (strlen(a.user) > 2 * len || strlen(a.domain) > 2 * len || a.nt_len > len)
                abort();
            ntlm_authenticate_clear(&a);
        }
        break;
    }
    case 3: {
        char *line = malloc(len + 1);
        memcpy(line, in, len);
        line[len] = '\0';
        const char *arg;
        enum ntlm_reply_kind k = ntlm_parse_reply(line, &arg);
        if (k == NTLM_REPLY_TT || k == NTLM_REPLY_AF || k == NTLM_REPLY_NA) {
            if (arg < line + 3 || arg[0] == '\0' || strpbrk(arg, "\r\n") != NULL)
                abort();
            unsigned code;
            (void)ntlm_status_reason(arg, &code);
        }
        free(line);
        break;
    }
    case 4: {
        char *authzid;
        if (krb_parse_layer_choice(in, len, &authzid)) {
            if (strlen(authzid) != len - 4)
                abort();
            free(authzid);
        }
        break;
    }
    case 6: { /* local NTLMv2: whatever the message, only a right proof may pass */
        static const unsigned char hash[16] = {1}, challenge[8] = {2};
        if (ntlm_verify_v2(hash, challenge, in, len, in, len, in, len) == NTLM_VERDICT_OK &&
            len < 16)
            abort();
        break;
    }
    default: {
        char service[64], host[256], realm[256];
        if (krb_parse_ap_req_target(in, len, service, host, realm, 64)) {
            if (strpbrk(service, "/@\\") || strpbrk(host, "/@\\") || strpbrk(realm, "/@\\"))
                abort();
        }
        break;
    }
    }
    return 0;
}
