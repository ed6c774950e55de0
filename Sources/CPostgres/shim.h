// SPDX-License-Identifier: Apache-2.0
// PostgreSQL's client library (libpq).
#include <libpq-fe.h>

// libpq prints server notices ("relation already exists, skipping") to stderr by default;
// a hub's stderr is its structured log, so they are dropped.
static void scimhub_pq_ignore_notice(void *arg, const char *message) { (void)arg; (void)message; }
static inline void scimhub_pq_quiet(PGconn *conn) { PQsetNoticeProcessor(conn, scimhub_pq_ignore_notice, NULL); }
