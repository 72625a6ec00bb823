#!/usr/bin/env bash
# Build (or reuse) helm from its Go module, as controlplane/build.sh builds the control plane.
#
#   tools/helm/build.sh            build if needed; print helm's path on stdout
#   tools/helm/build.sh --path     print the path helm has (or would have) and exit
#
# The version is the helm.sh/helm/v4 requirement in tools/helm/go.mod (go.sum pins every module).
# The binary is cached in ${KUBEAGORA_CACHE:-$HOME/.cache/kubeagora}/bin/helm-<version>-<hash>/helm,
# <hash> covering go.mod and go.sum. The first build compiles helm and its Kubernetes client
# libraries (the same k8s.io modules as the control plane, so Go's build cache shares most of them):
# minutes on 2 cores, a link of seconds once Go's build cache is warm. Progress goes to stderr.
# Exit status: 0 built or reused, 1 build failed, 2 Go missing or too old.
set -euo pipefail

MIN_GO_MINOR=26
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${KUBEAGORA_CACHE:-$HOME/.cache/kubeagora}"

say() { printf '[helm] %s\n' "$*" >&2; }

helm_version="$(awk '$1 == "helm.sh/helm/v4" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
if [[ -z "$helm_version" ]]; then
    say "cannot find the helm.sh/helm/v4 version in $here/go.mod"
    exit 1
fi
src_hash="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
out_dir="$cache_root/bin/helm-${helm_version}-${src_hash}"
binary="$out_dir/helm"

if [[ "${1:-}" == "--path" ]]; then
    echo "$binary"
    exit 0
fi
if [[ -x "$binary" ]]; then
    say "reusing cached $binary"
    echo "$binary"
    exit 0
fi

# shellcheck source=../go-build-common.sh
source "$here/../go-build-common.sh"
require_go
go_version="$(go env GOVERSION)"
mkdir -p "$out_dir"
lock_build "$out_dir" "$binary" "helm $helm_version"
log="$out_dir/build.log"
tmp="$out_dir/.helm.$$"
trap 'rm -f "$tmp"' EXIT

say "building helm $helm_version with $go_version (log: $log)"
start=$SECONDS
cd "$here"
# helm's own Makefile sets the version the same way (`helm version` prints it).
if ! go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
        -o "$tmp" helm.sh/helm/v4/cmd/helm >"$log" 2>&1; then
    say "go build failed; last lines of $log:"
    tail -n 30 "$log" >&2
    exit 1
fi
mv -f "$tmp" "$binary"
trap - EXIT
el=$((SECONDS - start))
say "built $binary in $(printf '%d:%02d' $((el / 60)) $((el % 60)))"
echo "$binary"
