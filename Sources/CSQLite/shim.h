// SPDX-License-Identifier: Apache-2.0
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a cast macro Swift cannot import: make SQLite copy bound bytes.
static inline sqlite3_destructor_type scimhub_sqlite_transient(void) { return SQLITE_TRANSIENT; }
