#ifndef ROLL_CLIBSSL_SHIM_H
#define ROLL_CLIBSSL_SHIM_H
// TLS for the agent's reports to the platform's API (OpenSSL's libssl, next to the
// libcrypto that libssh2 already needs): the macros Swift cannot call, as functions.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/// A client context: TLS 1.2 or later, the peer's certificate chain verified.
static inline SSL_CTX *_Nullable roll_tls_client_context(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/// Names the server for SNI (a host name, not an address literal).
static inline int roll_tls_set_server_name(SSL *_Nonnull ssl, const char *_Nonnull name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// The text of the last error on this thread's OpenSSL queue, cleared; "" when none.
static inline void roll_tls_last_error(char *_Nonnull out, size_t size) {
    unsigned long e = ERR_get_error();
    out[0] = 0;
    if (e) ERR_error_string_n(e, out, size);
    ERR_clear_error();
}

#endif
