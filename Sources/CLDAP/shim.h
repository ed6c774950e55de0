// SPDX-License-Identifier: Apache-2.0
// OpenLDAP's client library (libldap, liblber). ldap_set_option takes a void pointer and
// several constants are pointer macros, so Swift calls these typed helpers instead.
#include <ldap.h>
#include <lber.h>
#include <sys/time.h>
#include <string.h>

static inline int scimhub_ldap_set_int(LDAP *ld, int option, int value) { return ldap_set_option(ld, option, &value); }
static inline int scimhub_ldap_set_string(LDAP *ld, int option, const char *value) { return ldap_set_option(ld, option, value); }
static inline int scimhub_ldap_set_timeout(LDAP *ld, int option, double seconds) {
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return ldap_set_option(ld, option, &tv);
}
static inline int scimhub_ldap_referrals_off(LDAP *ld) { return ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF); }

/// Simple bind (RFC 4513 §5.1) with a password of explicit length.
static inline int scimhub_ldap_simple_bind(LDAP *ld, const char *dn, const char *password, size_t length) {
    struct berval cred;
    cred.bv_val = (char *)password;
    cred.bv_len = length;
    return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/// A NULL-terminated modification list for `count` modifications; free with ldap_mods_free(mods, 1).
static inline LDAPMod **scimhub_ldap_mods_new(int count) {
    return (LDAPMod **)ber_memcalloc((ber_len_t)count + 1, sizeof(LDAPMod *));
}
/// Sets modification `index`: operation (LDAP_MOD_ADD/DELETE/REPLACE) on attribute `type`, no values yet.
static inline LDAPMod *scimhub_ldap_mods_set(LDAPMod **mods, int index, int op, const char *type) {
    LDAPMod *m = (LDAPMod *)ber_memcalloc(1, sizeof(LDAPMod));
    if (m == NULL) return NULL;
    m->mod_op = op | LDAP_MOD_BVALUES;
    m->mod_type = ber_strdup(type);
    mods[index] = m;
    return m;
}
/// Appends one value (bytes of explicit length, so NUL and any UTF-8 survive) to a modification.
static inline int scimhub_ldap_mod_add_value(LDAPMod *m, const char *bytes, size_t length) {
    size_t n = 0;
    if (m->mod_bvalues != NULL) while (m->mod_bvalues[n] != NULL) n++;
    struct berval **values = (struct berval **)ber_memrealloc(m->mod_bvalues, (n + 2) * sizeof(struct berval *));
    if (values == NULL) return -1;
    m->mod_bvalues = values;
    values[n] = ber_mem2bv(bytes, length, 1, NULL);
    values[n + 1] = NULL;
    return values[n] == NULL ? -1 : 0;
}

/// One page of a search with the simple paged results control (RFC 2696). `cookie` is the
/// previous page's cookie (empty for the first page).
static inline int scimhub_ldap_paged_search(LDAP *ld, const char *base, int scope, const char *filter, char **attrs,
                                            int pageSize, const char *cookie, size_t cookieLength, LDAPMessage **result) {
    struct berval c;
    c.bv_val = (char *)cookie;
    c.bv_len = cookieLength;
    LDAPControl *control = NULL;
    int rc = ldap_create_page_control(ld, pageSize, cookieLength > 0 ? &c : NULL, 1, &control);
    if (rc != LDAP_SUCCESS) return rc;
    LDAPControl *controls[2] = { control, NULL };
    rc = ldap_search_ext_s(ld, base, scope, filter, attrs, 0, controls, NULL, NULL, LDAP_NO_LIMIT, result);
    ldap_control_free(control);
    return rc;
}

/// The next-page cookie of a paged search result, copied into `out` (at most `capacity`
/// bytes); returns its length (0 on the last page) or -1 when it does not fit or cannot be parsed.
static inline long scimhub_ldap_page_cookie(LDAP *ld, LDAPMessage *result, char *out, size_t capacity) {
    LDAPControl **controls = NULL;
    int err = 0;
    if (ldap_parse_result(ld, result, &err, NULL, NULL, NULL, &controls, 0) != LDAP_SUCCESS) return -1;
    LDAPControl *c = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, controls, NULL);
    long length = 0;
    if (c != NULL) {
        ber_int_t estimate = 0;
        struct berval cookie = { 0, NULL };
        if (ldap_parse_pageresponse_control(ld, c, &estimate, &cookie) != LDAP_SUCCESS) length = -1;
        else if (cookie.bv_len > capacity) length = -1;
        else { if (cookie.bv_len > 0) memcpy(out, cookie.bv_val, cookie.bv_len); length = (long)cookie.bv_len; }
        if (cookie.bv_val != NULL) ber_memfree(cookie.bv_val);
    }
    ldap_controls_free(controls);
    return length;
}
