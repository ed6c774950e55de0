# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/run and scripts/test: install what is missing, find the Swift toolchain.

# ensure_packages PKG...: apt-get install the Debian packages that are not installed yet.
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ensure_build_deps: the C libraries ScimHub links (SQLite, OpenSSL) and curl for the demo.
ensure_build_deps() {
    ensure_packages libsqlite3-dev libssl-dev libcurl4-openssl-dev pkg-config curl
    command -v python3 >/dev/null || ensure_packages python3
    command -v swift >/dev/null || { [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"; }
    command -v swift >/dev/null || { echo "swift toolchain not found on PATH" >&2; exit 1; }
}

# wait_for_url URL SECONDS: poll until the URL answers.
wait_for_url() {
    local i=0
    until curl -fsS "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -gt $(( $2 * 10 )) ] && { echo "timed out waiting for $1" >&2; return 1; }
        sleep 0.1
    done
}
