#!/usr/bin/env bash
# Build (or reuse) the kubeagora-controlplane binary.
#
#   controlplane/build.sh            build if needed; print the binary's path on stdout
#   controlplane/build.sh --path     print the path the binary has (or would have) and exit
#
# The binary is cached per version in ${KUBEAGORA_CACHE:-$HOME/.cache/kubeagora}/bin/<version>/,
# where <version> is the Kubernetes release plus a hash of go.mod, go.sum and the *.go files, so
# only the first build is slow (~10 minutes on 2 cores: it compiles kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl and etcd from source). Progress goes to stderr.
# Exit status: 0 built or reused, 1 build failed, 2 Go missing or too old.
set -euo pipefail

MIN_GO_MINOR=26
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${KUBEAGORA_CACHE:-$HOME/.cache/kubeagora}"

say() { printf '[controlplane] %s\n' "$*" >&2; }

k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
if [[ -z "$k8s_version" ]]; then
    say "cannot find the k8s.io/kubernetes version in $here/go.mod"
    exit 1
fi
src_hash="$(cd "$here" && cat go.mod go.sum $(LC_ALL=C ls ./*.go) | sha256sum | cut -c1-12)"
version="${k8s_version}-${src_hash}"
out_dir="$cache_root/bin/$version"
binary="$out_dir/kubeagora-controlplane"

if [[ "${1:-}" == "--path" ]]; then
    echo "$binary"
    exit 0
fi

if [[ -x "$binary" ]]; then
    say "reusing cached $binary"
    echo "$binary"
    exit 0
fi

# --- Go toolchain check (before anything slow), then one build per version at a time ----------
# shellcheck source=../tools/go-build-common.sh
source "$here/../tools/go-build-common.sh"
require_go
go_version="$(go env GOVERSION)"

# --- Build -----------------------------------------------------------------------------------
mkdir -p "$out_dir"
lock_build "$out_dir" "$binary" "$version"
log="$out_dir/build.log"
tmp="$out_dir/.kubeagora-controlplane.$$"
trap 'rm -f "$tmp"' EXIT

major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done

say "building kubeagora-controlplane $version with $go_version"
say "(the first build compiles Kubernetes $k8s_version and etcd from source: ~10 min on 2 cores, ~4 GiB of Go build cache)"
say "log: $log"
cd "$here"
say "downloading modules ..."
go mod download >"$log" 2>&1 || { say "go mod download failed; see $log"; tail -n 20 "$log" >&2; exit 1; }
total="$(go list -deps . 2>>"$log" | wc -l)"

start=$SECONDS
go build -v -trimpath -ldflags="$ldflags" -o "$tmp" . >>"$log" 2>&1 &
pid=$!
# On an early exit (Ctrl-C, a failed step) stop the build and drop its partial output. The trap must
# not fail itself: under `set -e` a failing trap command becomes the script's exit status, and after
# a successful build `kill` of the finished process does fail.
trap 'kill "$pid" 2>/dev/null || true; rm -f "$tmp"' EXIT
# Poll every second (a build that ends early is noticed at once), report progress every 15 s.
reported=$SECONDS
while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if kill -0 "$pid" 2>/dev/null && (( SECONDS - reported >= 15 )); then
        reported=$SECONDS
        compiled="$(grep -cv '^go: ' "$log" || true)"
        el=$((SECONDS - start))
        say "$(printf '%d:%02d' $((el / 60)) $((el % 60))) elapsed, ${compiled} of ~${total} packages compiled"
    fi
done
if ! wait "$pid"; then
    say "go build failed; last lines of $log:"
    tail -n 30 "$log" >&2
    exit 1
fi
mv -f "$tmp" "$binary"
trap - EXIT
el=$((SECONDS - start))
say "built $binary ($(du -h "$binary" | cut -f1)) in $(printf '%d:%02d' $((el / 60)) $((el % 60)))"
echo "$binary"
