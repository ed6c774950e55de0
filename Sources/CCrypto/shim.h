// SPDX-License-Identifier: Apache-2.0
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/bio.h>

// BIO_get_mem_data is a macro; Swift calls this typed helper instead.
static inline long scimhub_BIO_get_mem_data(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }
