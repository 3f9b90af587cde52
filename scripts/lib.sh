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

# The safety net: in a script (errexit on, not an interactive shell), a command that fails and
# thereby stops the script is named, with its status and where it was, before the script ends.
# errtrace carries the trap into functions and subshells; command substitutions run without
# errexit (no inherit_errexit), so the trap stays quiet there and the assignment that receives
# their status reports instead.
warden_on_err() {
    local status=$1 cmd=$2 where=$3 i
    [[ $- == *e* ]] || return 0
    # The functions it ran in, innermost first, with the lines they were called from.
    for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
        where+=", in ${FUNCNAME[i]}() called at ${BASH_SOURCE[i + 1]##*/}:${BASH_LINENO[i]}"
    done
    log "error: \`$cmd\` failed with exit status $status ($where)"
}
if [[ $- == *e* && $- != *i* ]]; then
    set -o errtrace
    trap 'warden_on_err $? "$BASH_COMMAND" "${BASH_SOURCE[0]##*/}, line $LINENO"' ERR
fi

# Quotes a command line for messages, so that it can be pasted back into a shell.
quote_cmd() {
    local out='' a
    for a; do
        if [[ $a =~ ^[A-Za-z0-9_./,:=@%+-]+$ ]]; then out+=" $a"; else out+=" $(printf '%q' "$a")"; fi
    done
    printf '%s\n' "${out# }"
}

# Usage: run_logged <logfile> <command> [args...]
# Runs the command with its output (stdout and stderr) in <logfile> instead of the terminal. On
# failure it prints the command, its exit status, the last lines of its output and where the
# whole log is, then exits with that status. While a progress counter is running (progress_start)
# and the command takes more than WARDEN_HEARTBEAT seconds (default 30), it says so at that
# interval, with the size of the log so far (and a percentage if the caller sets
# progress_expect_lines to the size a whole log is expected to have).
run_logged() {
    local logfile=$1 status=0 ticker=
    shift
    mkdir -p "$(dirname "$logfile")"
    if [[ -n ${progress_total:-} ]]; then
        # The ticker's sleep holds none of this script's output descriptors, so that a caller
        # reading them to the end (a command substitution, a pipe) never waits for it.
        (
            period=${WARDEN_HEARTBEAT:-30} waited=0
            while :; do
                sleep "$period" >/dev/null 2>&1 || exit 0
                kill -0 $$ 2>/dev/null || exit 0
                waited=$((waited + period))
                lines=$(wc -l <"$logfile" 2>/dev/null || echo 0)
                done_pct=
                if ((${progress_expect_lines:-0} > 0)); then
                    done_pct=", about $((lines * 100 / progress_expect_lines > 99 ? 99 : lines * 100 / progress_expect_lines))% done"
                fi
                progress_note "  ... still running after $(mmss "$waited")" \
                    "($lines lines of output in ${logfile##*/}$done_pct)"
            done
        ) >&2 &
        ticker=$!
    fi
    "$@" >"$logfile" 2>&1 </dev/null || status=$?
    if [[ -n $ticker ]]; then
        kill "$ticker" 2>/dev/null || true
        wait "$ticker" 2>/dev/null || true
    fi
    ((status == 0)) && return 0
    fail_report "$status" "$logfile" "$@"
    exit "$status"
}

# Usage: fail_report <status> <logfile> <command> [args...]
# The report run_logged gives: what ran, how it ended, the end of its output.
fail_report() {
    local status=$1 logfile=$2 lines=${WARDEN_TAIL:-25}
    shift 2
    log "error: exit status $status$( ((status == 124)) && echo ' (timed out)') from:"
    printf '    %s\n' "$(quote_cmd "$@")" >&2
    if [[ -s $logfile ]]; then
        log "last $lines lines of its output ($logfile):"
        tail -n "$lines" "$logfile" | sed 's/^/    | /' >&2
    else
        log "it printed nothing ($logfile is empty)"
    fi
}

# mm:ss of a number of seconds.
mmss() { printf '%02d:%02d' $(($1 / 60)) $(($1 % 60)); }

# Progress of a long build: progress_start <steps> <what>, then progress_step <description> before
# each step, and progress_done <where it is cached> at the end. Lines go to stderr as
#   [script] [step k/n, mm:ss] description
# and the last one says what was built, where it is cached and how long it took.
progress_start() {
    progress_total=$1 progress_what=$2 progress_k=0 progress_t0=$SECONDS
}
progress_note() {
    log "[step ${progress_k:-0}/${progress_total:-?}, $(mmss $((SECONDS - ${progress_t0:-$SECONDS})))] $*"
}
progress_step() {
    progress_k=$((progress_k + 1))
    progress_note "$@"
}
progress_done() {
    log "built $progress_what in $(mmss $((SECONDS - progress_t0))); cached in $*"
    progress_total=
}

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
DPkg::Lock::Timeout "600";
EOF
    apt-get -q -c "$dir/apt.conf" "$@"
}
