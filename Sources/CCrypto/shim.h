// SPDX-License-Identifier: Apache-2.0
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
// JOSE keys and signatures (Sources/OIDC): keys from parameters, RSA and P-256 ECDSA.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>

// BIO_get_mem_data is a macro; Swift calls this typed helper instead.
static inline long scimhub_BIO_get_mem_data(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }

// MARK: - JOSE public keys from parameters (RFC 7518 §6)
//
// Built here rather than in Swift because OSSL_PARAM_BLD stores its parameter names, BIGNUMs
// and octet strings by reference until OSSL_PARAM_BLD_to_param, and the resulting OSSL_PARAM
// keeps referring to the names: Swift's temporary C strings would dangle. C literals do not.

// EVP_PKEY_fromdata of a public key (EVP_PKEY_PUBLIC_KEY is a macro of macros Swift does not
// import); NULL on failure.
static inline EVP_PKEY *scimhub_public_key_fromdata(const char *type, OSSL_PARAM_BLD *bld) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params == NULL ? NULL : EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    // On failure EVP_PKEY_fromdata frees the key it allocated and leaves pkey NULL.
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

// An RSA public key from the big-endian modulus and exponent; NULL on failure.
static inline EVP_PKEY *scimhub_rsa_public_key(const unsigned char *n, int n_len, const unsigned char *e,
                                               int e_len) {
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = BN_bin2bn(n, n_len, NULL);
    BIGNUM *be = BN_bin2bn(e, e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bn != NULL && be != NULL && bld != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1) {
        pkey = scimhub_public_key_fromdata("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

// A P-256 public key from an encoded point (SEC 1 §2.3.3); NULL on failure, including a
// point not on the curve (EC_POINT_oct2point checks).
static inline EVP_PKEY *scimhub_p256_public_key(const unsigned char *point, size_t point_len) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld != NULL && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, point_len) == 1) {
        pkey = scimhub_public_key_fromdata("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}
