#ifndef ROLL_CLIBCRYPTO_SHIM_H
#define ROLL_CLIBCRYPTO_SHIM_H
// The hashes roll needs from OpenSSL's libcrypto (already linked for libssh2): SHA-256
// through the EVP interface, and one-shot HMAC-SHA1 for hashed known_hosts entries.
#include <openssl/evp.h>
#include <openssl/hmac.h>

static inline EVP_MD_CTX *_Nullable roll_sha256_new(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(ctx); return NULL; }
    return ctx;
}

static inline int roll_sha256_update(EVP_MD_CTX *_Nonnull ctx, const void *_Nullable data, size_t n) {
    return EVP_DigestUpdate(ctx, data, n);
}

/// Writes the digest of what `ctx` has seen so far into `out` (32 bytes), leaving `ctx` as it was.
static inline int roll_sha256_peek(const EVP_MD_CTX *_Nonnull ctx, unsigned char *_Nonnull out) {
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (!copy) return 0;
    unsigned int n = 0;
    int ok = EVP_MD_CTX_copy_ex(copy, ctx) == 1 && EVP_DigestFinal_ex(copy, out, &n) == 1 && n == 32;
    EVP_MD_CTX_free(copy);
    return ok;
}

static inline EVP_MD_CTX *_Nullable roll_sha256_clone(const EVP_MD_CTX *_Nonnull ctx) {
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (copy && EVP_MD_CTX_copy_ex(copy, ctx) != 1) { EVP_MD_CTX_free(copy); return NULL; }
    return copy;
}

static inline void roll_sha256_free(EVP_MD_CTX *_Nullable ctx) { EVP_MD_CTX_free(ctx); }

static inline int roll_hmac_sha1(const void *_Nonnull key, int keyLength, const void *_Nonnull data, size_t n,
                                 unsigned char *_Nonnull out) {
    unsigned int length = 0;
    return HMAC(EVP_sha1(), key, keyLength, (const unsigned char *)data, n, out, &length) != NULL && length == 20;
}

#endif
