#!/usr/bin/env bash
# Builds the third-party test binaries from the Go module proxy into a cache outside the repo,
# reusing what is already there: etcd, the Kubernetes components of the local node (kube-apiserver,
# kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubectl), crictl, csi-sanity, helm,
# and kube-router (only its NetworkPolicy firewall runs on the local node, see cluster/node.py).
# Usage: build-test-bins.sh [NAME|all]
set -euo pipefail

K8S_VERSION="${RAZORFS_K8S_VERSION:-v1.35.4}"
CSI_SANITY_VERSION="v5.4.0"
CRICTL_VERSION="v1.34.0"  # the proxy refuses v1.35.0
K8S_COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl"
HELM_VERSION="${RAZORFS_HELM_VERSION:-v3.19.0}"
HELM_K8S_MINOR=34  # the k8s.io/client-go minor that helm release builds against
# The NetworkPolicy enforcer of the local node. GHSA-phqm-jgc3-qf8g affects only its service proxy,
# which the node never runs (--run-service-proxy=false, see tests/realparts/cluster/node.py).
KUBE_ROUTER_VERSION="v2.1.0"
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

# Without the version stamped in, the binaries report v0.0.0-master and kubectl/helm cannot
# parse the server's version.
k8s_ldflags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  echo "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION" \
    "-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
}

build_k8s_component() {
  local name="$1" out="$CACHE/k8s-$K8S_VERSION/$1"
  [ -x "$out" ] && { echo "$out"; return; }
  local dir; dir=$(k8s_wrapper)
  mkdir -p "$(dirname "$out")"
  # Every command but kube-apiserver needs its own `go get` (kube-proxy's dependencies are not
  # in the wrapper's go.sum otherwise).
  (cd "$dir" && go get "k8s.io/kubernetes/cmd/$name@$K8S_VERSION" >&2)
  log "building $name $K8S_VERSION (the first Kubernetes build takes several minutes)"
  (cd "$dir" && go build -ldflags "$(k8s_ldflags)" -o "$out.tmp" "k8s.io/kubernetes/cmd/$name") && mv "$out.tmp" "$out"
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
  local out="$CACHE/helm-$HELM_VERSION-k8s-$HELM_K8S_MINOR"
  [ -x "$out" ] && { echo "$out"; return; }
  log "building helm $HELM_VERSION"
  local gobin="$WORK/gobin-helm"
  # As helm's own Makefile stamps it: without these, `helm template` assumes Kubernetes v1.20.
  local stamp="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  stamp="$stamp -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
  stamp="$stamp -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
  GOBIN="$gobin" go install -ldflags "-s -w $stamp" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$gobin/helm" "$out"
  echo "$out"
}

build_crictl() {
  local out="$CACHE/crictl-$CRICTL_VERSION"
  [ -x "$out" ] && { echo "$out"; return; }
  log "building crictl $CRICTL_VERSION"
  local gobin="$WORK/gobin-crictl"
  GOBIN="$gobin" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  mv "$gobin/crictl" "$out"
  echo "$out"
}

build_kube_router() {
  local out="$CACHE/kube-router-$KUBE_ROUTER_VERSION"
  [ -x "$out" ] && { echo "$out"; return; }
  log "building kube-router $KUBE_ROUTER_VERSION"
  local gobin="$WORK/gobin-kube-router"
  GOBIN="$gobin" go install \
    -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  mv "$gobin/kube-router" "$out"
  echo "$out"
}

link() { ln -sf "$2" "$CACHE/$1"; }

what="${1:-all}"
case "$what" in
  etcd) link etcd "$(build_etcd)" ;;
  csi-sanity) link csi-sanity "$(build_csi_sanity)" ;;
  helm) link helm "$(build_helm)" ;;
  crictl) link crictl "$(build_crictl)" ;;
  kube-router) link kube-router "$(build_kube_router)" ;;
  kube-*|kubelet|kubectl) link "$what" "$(build_k8s_component "$what")" ;;
  all)
    link etcd "$(build_etcd)"
    for name in $K8S_COMPONENTS; do link "$name" "$(build_k8s_component "$name")"; done
    link crictl "$(build_crictl)"
    link csi-sanity "$(build_csi_sanity)"
    link helm "$(build_helm)"
    link kube-router "$(build_kube_router)"
    ;;
  *) echo "usage: $0 [etcd|$(echo $K8S_COMPONENTS | tr ' ' '|')|crictl|kube-router|csi-sanity|helm|all]" >&2; exit 2 ;;
esac
