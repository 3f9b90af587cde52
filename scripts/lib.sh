# shellcheck shell=bash
# Common helpers for warden's scripts, meant to be sourced after `set -euo pipefail`. It sets
# no shell options itself, so sourcing it into an interactive shell is harmless.

WARDEN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The cache lives outside the clone so that fresh clones (CI) and `git clean` keep the
# expensive firmware build.
WARDEN_CACHE=${WARDEN_CACHE:-$HOME/.cache/warden}
# Scripts print cache paths for other tools to use from any directory.
[[ $WARDEN_CACHE == /* ]] || WARDEN_CACHE=$PWD/$WARDEN_CACHE
export WARDEN_ROOT WARDEN_CACHE

# stdout is reserved for machine-readable results (paths), so all chatter goes to stderr.
log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# The URI of the main Debian archive this machine's apt already uses. Read at run time so that
# the repository names no mirror: whatever the machine is configured (and allowed) to reach is
# what we use. Prefers deb822 .sources files; falls back to one-line sources.list.
debian_mirror() {
    local uri
    uri=$(awk '
        # deb822: stanzas separated by blank lines; pick one with a plain codename suite
        # (no "-security"/"-updates" suffix), which is the main archive.
        function flush() {
            if (uris != "" && plain && types ~ /(^| )deb( |$)/) { print uris; uris = ""; exit }
            uris = ""; plain = 0; types = ""
        }
        FNR == 1 { flush() }
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        tolower($1) == "types:" { types = $0; sub(/^[^:]*:[[:space:]]*/, "", types) }
        tolower($1) == "uris:" { uris = $2 }
        tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i !~ /-/) plain = 1 }
        END { flush() }
    ' /dev/null /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri && -r /etc/apt/sources.list ]]; then
        # One-line format: "deb [opts] URI suite comps..."; skip the options block if any.
        uri=$(awk '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) !~ /-/) { print $i; exit } }' /etc/apt/sources.list)
    fi
    [[ -n $uri ]] || die "cannot find the Debian archive URI in /etc/apt/sources.list{,.d}"
    printf '%s\n' "${uri%/}"
}

# apt-get with a private state directory ($1): its own sources.list, lists and caches, so that
# fetching sid/trixie sources never touches (or depends on) the system's apt state. The system's
# apt.conf.d still applies (proxies, validity settings), minus its update/dpkg hooks, which
# would act on the system state.
private_apt_get() {
    local dir=$1; shift
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    cat > "$dir/apt.conf" <<EOF
#clear APT::Update::Post-Invoke-Success;
#clear APT::Update::Post-Invoke;
#clear DPkg::Post-Invoke;
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
Dir::Cache::pkgcache "$dir/cache/pkgcache.bin";
Dir::Cache::srcpkgcache "$dir/cache/srcpkgcache.bin";
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Acquire::Languages "none";
APT::Sandbox::User "$(id -un)";
EOF
    apt-get -q -c "$dir/apt.conf" "$@"
}
