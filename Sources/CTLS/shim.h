// SPDX-License-Identifier: Apache-2.0
// OpenSSL's libssl for TLS on the hub's own listener (Sources/HTTPServer/TLS.swift).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

// Macros Swift does not import, as typed functions.
static inline int scimhub_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline int scimhub_ssl_ctx_set_max_tls13(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
}
static inline int scimhub_ssl_ctx_set_groups(SSL_CTX *ctx) {
    return (int)SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384");
}
// SNI for a client (SSL_set_tlsext_host_name is a macro).
static inline int scimhub_ssl_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}
// Partial writes (a response larger than the socket buffer), and a buffer that may move
// between retries (Swift arrays do).
static inline void scimhub_ssl_ctx_set_modes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                              | SSL_MODE_RELEASE_BUFFERS);
}
// No renegotiation of any kind (TLS 1.2 client-initiated renegotiation is a DoS lever),
// no compression (CRIME), a fresh ECDH key per handshake, the client's cipher order.
static inline void scimhub_ssl_ctx_set_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_SINGLE_ECDH_USE
                                 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
}

// ALPN (RFC 7301): the hub speaks HTTP/1.1 only; a client offering h2 and http/1.1 gets
// http/1.1, one offering only h2 gets no ALPN and may close.
static int scimhub_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                               const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, http11, sizeof(http11), in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}
static inline void scimhub_ssl_ctx_set_alpn_http11(SSL_CTX *ctx) {
    SSL_CTX_set_alpn_select_cb(ctx, scimhub_alpn_select, NULL);
}

// The newest queued OpenSSL error as text (for "cannot load FILE: reason"); clears the queue.
static inline void scimhub_ssl_last_error(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (e == 0) { if (len > 0) buf[0] = 0; } else { ERR_error_string_n(e, buf, len); }
    ERR_clear_error();
}
