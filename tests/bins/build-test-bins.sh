#!/usr/bin/env bash
# Builds the third-party test binaries (kube-apiserver, etcd, csi-sanity, helm) from the Go
# module proxy into a cache outside the repo, reusing what is already there.
# Usage: build-test-bins.sh [kube-apiserver|etcd|csi-sanity|helm|all]
set -euo pipefail

K8S_VERSION="${RAZORFS_K8S_VERSION:-v1.35.4}"
CSI_SANITY_VERSION="v5.4.0"
HELM_VERSION="${RAZORFS_HELM_VERSION:-v3.19.0}"
CACHE="${RAZORFS_BIN_CACHE:-$HOME/.cache/razorfs/bin}"
WORK="${RAZORFS_BUILD_CACHE:-$HOME/.cache/razorfs/build}"
export GOFLAGS="${GOFLAGS:-} -trimpath"
export CGO_ENABLED=0
mkdir -p "$CACHE" "$WORK"

log() { echo "test-bins: $*" >&2; }

# The wrapper module requires k8s.io/kubernetes and points each staging module at its
# published v0.<minor>.<patch> twin; the list comes from that release's own go.mod.
k8s_wrapper() {
  local dir="$WORK/k8s-$K8S_VERSION"
  if [ -f "$dir/.ready" ]; then echo "$dir"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  local staging_version="v0.${K8S_VERSION#v1.}"
  local modfile
  modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module razorfs.local/testbins"
    echo
    echo "go $(awk '/^go /{print $2; exit}' "$modfile")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -Eo '^[[:space:]]*k8s\.io/[A-Za-z0-9._-]+ => \./staging/src/k8s\.io/[A-Za-z0-9._-]+' "$modfile" \
      | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > "$dir/go.mod"
  log "wrapper go.mod for k8s.io/kubernetes $K8S_VERSION with $(grep -c '^replace' "$dir/go.mod") staging replaces"
  # etcd stays at the version this Kubernetes release itself requires.
  (cd "$dir" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2 \
    && go get "go.etcd.io/etcd/server/v3@$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)" >&2)
  touch "$dir/.ready"
  echo "$dir"
}

build_kube_apiserver() {
  local out="$CACHE/kube-apiserver-$K8S_VERSION"
  [ -x "$out" ] && { echo "$out"; return; }
  local dir; dir=$(k8s_wrapper)
  log "building kube-apiserver $K8S_VERSION (takes several minutes the first time)"
  (cd "$dir" && go build -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver) && mv "$out.tmp" "$out"
  echo "$out"
}

build_etcd() {
  local dir; dir=$(k8s_wrapper)
  local version
  version=$(cd "$dir" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  local out="$CACHE/etcd-$version"
  [ -x "$out" ] && { echo "$out"; return; }
  log "building etcd $version"
  (cd "$dir" && go build -o "$out.tmp" go.etcd.io/etcd/server/v3) && mv "$out.tmp" "$out"
  echo "$out"
}

build_csi_sanity() {
  local out="$CACHE/csi-sanity-$CSI_SANITY_VERSION"
  [ -x "$out" ] && { echo "$out"; return; }
  log "building csi-sanity $CSI_SANITY_VERSION"
  local gobin="$WORK/gobin-csi-sanity"
  GOBIN="$gobin" go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION"
  mv "$gobin/csi-sanity" "$out"
  echo "$out"
}

build_helm() {
  local out="$CACHE/helm-$HELM_VERSION"
  [ -x "$out" ] && { echo "$out"; return; }
  log "building helm $HELM_VERSION"
  local gobin="$WORK/gobin-helm"
  GOBIN="$gobin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$gobin/helm" "$out"
  echo "$out"
}

link() { ln -sf "$2" "$CACHE/$1"; }

what="${1:-all}"
case "$what" in
  kube-apiserver) link kube-apiserver "$(build_kube_apiserver)" ;;
  etcd) link etcd "$(build_etcd)" ;;
  csi-sanity) link csi-sanity "$(build_csi_sanity)" ;;
  helm) link helm "$(build_helm)" ;;
  all)
    link etcd "$(build_etcd)"
    link kube-apiserver "$(build_kube_apiserver)"
    link csi-sanity "$(build_csi_sanity)"
    link helm "$(build_helm)"
    ;;
  *) echo "usage: $0 [kube-apiserver|etcd|csi-sanity|helm|all]" >&2; exit 2 ;;
esac
