// SPDX-License-Identifier: Apache-2.0
// PostgreSQL's client library (libpq).
#include <libpq-fe.h>
