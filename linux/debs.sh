# shellcheck shell=bash
# Helpers for scripts/linux and scripts/initramfs, sourced after scripts/lib.sh: installing missing
# host tools, and fetching exact versions of Debian binary packages (arm64, or Architecture: all).
# Those packages are never installed: each .deb is kept as
# $WARDEN_CACHE/debs/<package>_<version>/<file>.deb and unpacked by the callers.
#
# The package lists live in a private apt state directory ($WARDEN_CACHE/apt-arm64, see
# private_apt_get in scripts/lib.sh) naming sid and trixie on the Debian archive URI that this
# machine's apt already uses; apt-get download checks every .deb against the signed indices.

# Usage: ensure_tools tool=package...
# Installs (quietly, like scripts/setup) the packages of the tools that are not in PATH; a tool
# given as an absolute path is a file that must exist (e.g. a header).
ensure_tools() {
    local spec tool missing=()
    for spec; do
        tool=${spec%%=*}
        if [[ $tool == /* ]]; then
            [[ -e $tool ]] || missing+=("${spec#*=}")
        else
            command -v "$tool" >/dev/null || missing+=("${spec#*=}")
        fi
    done
    ((${#missing[@]})) || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing: ${missing[*]}"
    # env rather than export: sudo resets the environment.
    run_logged "$WARDEN_CACHE/logs/apt-update.log" \
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update
    run_logged "$WARDEN_CACHE/logs/apt-install.log" \
        as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -q install -y --no-install-recommends "${missing[@]}"
}

debs_aptdir=$WARDEN_CACHE/apt-arm64
debs_cache=$WARDEN_CACHE/debs
debs_updated=0

# arm64 is the only architecture in the lists (Architecture: all packages are in binary-arm64's
# index too). AppStream metadata is of no use here.
debs_apt_opts=(
    -o APT::Architecture=arm64 -o APT::Architectures=arm64
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
)

debs_update() {
    local mirror suite
    mirror=$(debian_mirror)
    for suite in sid trixie; do
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
            "$mirror" "$suite"
    done >"$debs_aptdir/sources.list"
    log "updating the private arm64 apt lists in $debs_aptdir"
    private_apt_get "$debs_aptdir" "${debs_apt_opts[@]}" update --error-on=any \
        >"$debs_aptdir/update.log" 2>&1 ||
        die "apt-get update (private, arm64) failed; see $debs_aptdir/update.log"
    debs_updated=1
}

# The cache directory of package $1 at version $2.
debs_dir() { printf '%s/%s_%s\n' "$debs_cache" "$1" "${2//:/%3a}"; }

# The versions of package $1 that the private lists know, for error messages.
debs_served() {
    apt-cache -c "$debs_aptdir/apt.conf" "${debs_apt_opts[@]}" madison "$1" 2>/dev/null |
        awk -F'|' '{ gsub(/ /, "", $2); split($3, s, " "); sub(/\/.*/, "", s[2]);
                     printf "%s%s (%s)", n++ ? ", " : "", $2, s[2] }'
}

# Usage: debs_fetch pkg=version...
# Sets the array debs_paths to the cached .deb of each argument, in order, downloading the
# missing ones. Fails naming the served versions if a version is not (or no longer) served.
debs_fetch() {
    local spec pkg ver dir tmp served locked=0
    local -a found
    debs_paths=()
    for spec; do
        pkg=${spec%%=*} ver=${spec#*=}
        [[ $pkg != "$spec" && -n $pkg && -n $ver ]] || die "debs_fetch: bad package spec '$spec'"
        dir=$(debs_dir "$pkg" "$ver")
        found=("$dir"/*.deb)
        if [[ ! -f ${found[0]} ]]; then
            if ((!locked)); then
                # Both scripts share the apt state; apt's own lock would make one of them fail.
                mkdir -p "$debs_cache" "$debs_aptdir"
                exec 8>"$debs_aptdir/.lock"
                flock 8
                locked=1
                rm -rf "$debs_cache"/.[!.]*
            fi
            # Another caller may have fetched it while this one waited for the lock.
            found=("$dir"/*.deb)
        fi
        if [[ ! -f ${found[0]} ]]; then
            [[ -f $debs_aptdir/sources.list && -d $debs_aptdir/lists ]] || debs_update
            tmp=$(mktemp -d "$debs_cache/.${pkg}.XXXXXX")
            log "downloading $pkg=$ver"
            # Stale lists may not know a newly pinned version, or may point at files the
            # mirror has since dropped: refresh once before giving up.
            until (cd "$tmp" && private_apt_get "$debs_aptdir" "${debs_apt_opts[@]}" \
                    download "$pkg=$ver" >"$tmp/download.log" 2>&1); do
                if ((debs_updated)); then
                    log "$(tail -n 3 "$tmp/download.log")"
                    served=$(debs_served "$pkg")
                    rm -rf "$tmp"
                    die "$pkg $ver is not served by the Debian mirror (any more); served: ${served:-none}. Update linux/versions."
                fi
                debs_update
            done
            rm -f "$tmp/download.log"
            found=("$tmp"/*.deb)
            if ((${#found[@]} != 1)) || [[ ! -f ${found[0]} ]]; then
                die "apt-get download $pkg=$ver did not leave exactly one .deb in $tmp"
            fi
            rm -rf "$dir"
            mv "$tmp" "$dir"
            found=("$dir"/*.deb)
        fi
        debs_paths+=("${found[0]}")
    done
    if ((locked)); then exec 8>&-; fi
}
