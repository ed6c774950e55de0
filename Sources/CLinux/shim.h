// SPDX-License-Identifier: Apache-2.0
// Linux-only headers Glibc's module map does not export.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>

/// errno is a macro on glibc; Swift reads it through this function.
static inline int scimhub_errno(void) { return errno; }

/// accept4(2) is declared only under _GNU_SOURCE.
static inline int scimhub_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

#include <malloc.h>
/// Caps glibc's per-thread malloc arenas (mallopt's M_ARENA_MAX is a macro).
static inline int scimhub_limit_malloc_arenas(int n) { return mallopt(M_ARENA_MAX, n); }
