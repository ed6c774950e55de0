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

# ensure_build_deps: the C libraries ScimHub links (SQLite, OpenSSL, libcurl, libldap, libpq),
# OpenLDAP's server and tools (the demo's imaging directory, the LDAP tests) and curl.
ensure_build_deps() {
    ensure_packages libsqlite3-dev libssl-dev libcurl4-openssl-dev libldap-dev libpq-dev pkg-config curl slapd ldap-utils
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

# start_slapd DIR PORT SUFFIX PASSWORD: a throw-away OpenLDAP server for the demo, configured
# from scripts/slapd/ (the same templates the tests use), with ou=people, ou=groups and
# ou=disabled under SUFFIX and rootdn cn=admin,SUFFIX. It detaches; stop_slapd DIR stops it.
start_slapd() {
    local dir=$1 port=$2 suffix=$3 password=$4
    local dc=${suffix#dc=}; dc=${dc%%,*}
    mkdir -p "$dir/db"
    local fill="s#@DIR@#$dir#g; s#@SUFFIX@#$suffix#g; s#@ROOTDN@#cn=admin,$suffix#g; s#@ROOTPW@#$password#g; s#@DC@#$dc#g"
    sed "$fill" scripts/slapd/slapd.conf.template > "$dir/slapd.conf"
    sed "$fill" scripts/slapd/base.ldif.template > "$dir/base.ldif"
    /usr/sbin/slapadd -q -f "$dir/slapd.conf" -l "$dir/base.ldif"
    /usr/sbin/slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/"
    local i=0
    until ldapsearch -x -H "ldap://127.0.0.1:$port" -D "cn=admin,$suffix" -w "$password" -b "$suffix" -s base dn >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -gt 100 ] && { echo "slapd did not start (see $dir)" >&2; return 1; }
        sleep 0.1
    done
}

stop_slapd() {
    [ -f "$1/slapd.pid" ] && kill "$(cat "$1/slapd.pid")" 2>/dev/null || true
}
