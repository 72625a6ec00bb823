# Sourced by controlplane/build.sh and tools/helm/build.sh: the two steps every cached Go build of ours
# takes before compiling. The sourcing script defines `say MESSAGE` (to stderr) and MIN_GO_MINOR.

# Go >= 1.$MIN_GO_MINOR on PATH, or exit 2 saying what is missing. GOTOOLCHAIN=local: never download a
# toolchain (only the module proxy is reachable, and a silent download would hide the real requirement).
require_go() {
    export GOTOOLCHAIN=local
    if ! command -v go >/dev/null 2>&1; then
        say "Go is not installed (need Go >= 1.${MIN_GO_MINOR}); install it from https://go.dev/dl/ and rerun."
        exit 2
    fi
    local go_version
    go_version="$(go env GOVERSION 2>/dev/null || true)"   # e.g. go1.26.8
    if [[ ! "$go_version" =~ ^go1\.([0-9]+) ]] || (( BASH_REMATCH[1] < MIN_GO_MINOR )); then
        say "Go ${go_version:-of unknown version} is too old: need Go >= 1.${MIN_GO_MINOR} (https://go.dev/dl/)."
        exit 2
    fi
}

# lock_build OUT_DIR BINARY WHAT: one build per version at a time. A second caller (another terminal, a
# parallel test run) waits for the first, then prints its BINARY and exits 0, instead of compiling the
# same packages again and truncating the first build's log. The lock (fd 9) is held until the script ends.
lock_build() {
    local out_dir="$1" binary="$2" what="$3"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$out_dir/.build.lock"
    if ! flock -n 9; then
        say "another build of $what is running; waiting for it ..."
        flock 9
    fi
    if [[ -x "$binary" ]]; then
        say "reusing $binary (built meanwhile)"
        echo "$binary"
        exit 0
    fi
}
