# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/image-test and scripts/compose-test: timed steps, podman on its own storage
# under a temporary folder, the Debian bookworm base bootstrapped here (cached), and the hub
# image built from a host-built binary. The caller sets SCRIPT (its name, for messages) and
# WORK (an empty temporary folder), then calls podman_setup.

now_ms() { echo $(($(date +%s%N) / 1000000)); }
run_start=$(now_ms)
step_name=""
step_start=$run_start
timings=()
end_step() {
    [ -n "$step_name" ] || return 0
    local ms=$(($(now_ms) - step_start))
    timings+=("$(printf '%6d.%01ds  %s' $((ms / 1000)) $((ms % 1000 / 100)) "$step_name")")
    step_name=""
}
step() {
    end_step
    step_name=$1
    step_start=$(now_ms)
    echo "== $1" >&2
}
fail() {
    echo "$SCRIPT: FAILED in \"$step_name\": $*" >&2
    exit 1
}
print_timings() {
    local ms=$(($(now_ms) - run_start))
    echo "== timings" >&2
    printf '%s\n' "${timings[@]}" >&2
    printf '%6d.%01ds  total\n' $((ms / 1000)) $((ms % 1000 / 100)) >&2
}

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/scimhub-image
base_tar=$cache/debian-bookworm-minbase.tar
base_image=localhost/scimhub-image-test-base:bookworm
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
driver=overlay
podman_ready=0

# podman with its own storage in $WORK: nothing is left in the machine's storage, and nothing of
# anyone else's is touched. runc, cgroupfs and file events are what work on these machines.
# Networks are kept in $WORK too (rootful podman keeps them in /etc/containers/networks).
pm_argv() {
    PM=(podman --root "$WORK/storage" --runroot "$WORK/run" --tmpdir "$WORK/tmp" --storage-driver "$driver"
        --runtime runc --cgroup-manager=cgroupfs --events-backend=file --network-config-dir "$WORK/networks")
    [ -z "$sudo" ] || PM=("$sudo" "${PM[@]}")
}
# Without systemd, podman says on every start that it cannot schedule health checks: true, and
# not news (the scripts run the health checks themselves).
pm() { "${PM[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
pm_argv

# podman_cleanup: every container, volume, image and network podman made, its storage and the
# mounts overlay leaves behind, the folder $WORK and the binary copied for the build context.
podman_cleanup() {
    if [ "$podman_ready" = 1 ]; then
        pm rm -af -t 0 >/dev/null 2>&1
        pm pod rm -af >/dev/null 2>&1
        pm volume rm -af >/dev/null 2>&1
        pm network prune -f >/dev/null 2>&1
        pm rmi -af >/dev/null 2>&1
        pm system reset -f >/dev/null 2>&1
    fi
    # Overlay storage leaves its own mounts behind; the deepest first.
    findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r | while read -r m; do $sudo umount -l "$m"; done
    $sudo rm -rf "$WORK"
    rm -f .build-image/scimhub
    rmdir .build-image 2>/dev/null
}

# podman_packages: podman, runc, debootstrap; the host must be bookworm (the binary runs in the image).
podman_packages() {
    ensure_build_deps
    ensure_packages podman runc debootstrap
    . /etc/os-release
    # The host-built binary runs on the image's glibc and libraries only if the host is bookworm too.
    [ "${VERSION_CODENAME:-}" = bookworm ] || fail "the host is ${PRETTY_NAME:-unknown}, not Debian bookworm: its binary may not run on the image"
}

# podman_base_image: $base_image, from $base_tar (debootstrap --variant=minbase, made when missing
# or older than SCIMHUB_IMAGE_BASE_MAX_DAYS, 30); falls back to vfs storage when overlay fails.
podman_base_image() {
    mkdir -p "$cache"
    if [ -s "$base_tar" ] && [ -z "$(find "$base_tar" -mtime +"${SCIMHUB_IMAGE_BASE_MAX_DAYS:-30}")" ]; then
        echo "cached: $base_tar ($(date -r "$base_tar" -u +%F))" >&2
    else
        # The mirrors apt uses here for bookworm and bookworm-security (SCIMHUB_DEBIAN_MIRROR and
        # SCIMHUB_DEBIAN_SECURITY_MIRROR override them).
        local mirror security rootfs
        read -r mirror security < <(python3 - <<'PY'
import glob, re
found = {}
def note(uri, suites):
    for suite in suites:
        found.setdefault(suite, uri)
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(f).read()):
        fields = dict(l.split(":", 1) for l in stanza.splitlines() if ":" in l and not l.startswith(("#", " ")))
        fields = {k.strip(): v.split() for k, v in fields.items()}
        if "deb" in fields.get("Types", []) and fields.get("Enabled", ["yes"]) != ["no"] and fields.get("URIs"):
            note(fields["URIs"][0], fields.get("Suites", []))
for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(f).read().splitlines()
    except OSError:
        continue
    for l in lines:
        w = [x for x in l.split() if not x.startswith("[")] if l.startswith("deb ") else []
        if len(w) >= 3:
            note(w[1], [w[2]])
print(found.get("bookworm", "http://deb.debian.org/debian"),
      found.get("bookworm-security", "http://deb.debian.org/debian-security"))
PY
        )
        mirror=${SCIMHUB_DEBIAN_MIRROR:-$mirror}
        security=${SCIMHUB_DEBIAN_SECURITY_MIRROR:-$security}
        [ -n "$mirror" ] && [ -n "$security" ] || fail "could not tell which Debian mirrors apt uses here"
        echo "debootstrap --variant=minbase bookworm from $mirror (security: $security)" >&2
        rootfs=$WORK/rootfs
        $sudo debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
        # Like the official bookworm-slim: the same suites (with updates and security), no docs or
        # manuals in what is installed later, no package lists or caches, no host files.
        $sudo rm -f "$rootfs/etc/apt/sources.list" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
        $sudo tee "$rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        $sudo tee "$rootfs/etc/dpkg/dpkg.cfg.d/slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
        $sudo sh -c "rm -rf '$rootfs'/var/lib/apt/lists/* '$rootfs'/var/cache/apt/*.bin '$rootfs'/var/cache/apt/archives/*.deb \
            '$rootfs'/usr/share/doc/* '$rootfs'/usr/share/man/* '$rootfs'/usr/share/info/* '$rootfs'/usr/share/locale/*"
        $sudo tar --numeric-owner -C "$rootfs" -cf "$base_tar.tmp" . || fail "could not write $base_tar"
        mv -f "$base_tar.tmp" "$base_tar"
        $sudo rm -rf "$rootfs"
    fi
    mkdir -p "$WORK/storage" "$WORK/run" "$WORK/tmp" "$WORK/networks"
    podman_ready=1
    if ! pm import -q "$base_tar" "$base_image" >"$WORK/import.log" 2>&1; then
        cat "$WORK/import.log" >&2
        echo "podman's overlay storage failed here (above): using vfs storage instead (slower, more disk)" >&2
        pm system reset -f >/dev/null 2>&1 || true
        driver=vfs
        pm_argv
        mkdir -p "$WORK/storage" "$WORK/run" "$WORK/tmp" "$WORK/networks"
        pm import -q "$base_tar" "$base_image" >"$WORK/import.log" 2>&1 || { cat "$WORK/import.log" >&2; fail "podman import failed"; }
    fi
}

# host_binary JOBS: scimhub built on the host (release, static Swift runtime, niced), copied to
# .build-image/scimhub, the path docker/Dockerfile's SCIMHUB_BINARY takes.
host_binary() {
    nice -n 19 swift build -c release --product scimhub --static-swift-stdlib -j "$1" >"$WORK/swift-build.log" 2>&1 \
        || { grep -E 'error:' "$WORK/swift-build.log" | head -20 >&2; tail -20 "$WORK/swift-build.log" >&2; fail "swift build failed"; }
    local bin
    bin=$(swift build -c release --product scimhub --static-swift-stdlib --show-bin-path)/scimhub
    [ -x "$bin" ] || fail "no binary at $bin"
    mkdir -p .build-image
    ln -f "$bin" .build-image/scimhub 2>/dev/null || cp -f "$bin" .build-image/scimhub
}

# hub_image IMAGE BUILD_ARGS...: docker/Dockerfile built as IMAGE from $base_image, niced.
hub_image() {
    local image=$1
    shift
    nice -n 19 "${PM[@]}" build --pull=never --format docker "${ulimits[@]}" -f docker/Dockerfile -t "$image" \
        --build-arg BASE_IMAGE="$base_image" "$@" . >"$WORK/podman-build.log" 2>&1 \
        || { tail -40 "$WORK/podman-build.log" >&2; fail "podman build failed (log above)"; }
    echo "image: $(pm image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'), user $(pm image inspect -f '{{.Config.User}}' "$image")" >&2
}
