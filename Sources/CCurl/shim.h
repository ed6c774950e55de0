// SPDX-License-Identifier: Apache-2.0
#include <curl/curl.h>

// curl_easy_setopt is variadic: Swift calls these typed wrappers instead.
static inline CURLcode scimhub_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode scimhub_curl_set_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode scimhub_curl_set_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode scimhub_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
typedef size_t (*scimhub_curl_write_cb)(char *, size_t, size_t, void *);
static inline CURLcode scimhub_curl_set_write_function(CURL *h, CURLoption o, scimhub_curl_write_cb f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode scimhub_curl_get_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode scimhub_curl_set_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
