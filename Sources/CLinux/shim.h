// SPDX-License-Identifier: Apache-2.0
// Linux-only declarations Glibc's module map does not export. No feature-test macros here:
// defining _GNU_SOURCE would change struct layouts (fd_set) that other modules also see.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <errno.h>
#include <malloc.h>

/// errno is a macro on glibc; Swift reads it through this function.
static inline int scimhub_errno(void) { return errno; }

/// accept4(2) is declared by <sys/socket.h> only under _GNU_SOURCE; glibc always provides it.
extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
static inline int scimhub_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

/// Caps glibc's per-thread malloc arenas (mallopt's M_ARENA_MAX is a macro).
static inline int scimhub_limit_malloc_arenas(int n) { return mallopt(M_ARENA_MAX, n); }
