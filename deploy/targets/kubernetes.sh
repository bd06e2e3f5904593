# shellcheck shell=bash
# Deploy target "kubernetes": the blue/green pair of deploy/kubernetes/ in one
# namespace of a cluster kubectl can reach (docs/deploy.md, "Kubernetes").
#
#   ingress ──▶ Service churn-serving (selector slot: blue|green) ──▶ Deployment churn-serving-blue
#                                                                └─▶ Deployment churn-serving-green
#   each colour also has its own Service, churn-serving-<slot>, HPA and PDB
#
# A deploy sets the idle colour's image (by digest), model pin
# (CHURN_MODEL_SHA256) and size in one patch, waits for its rollout (every
# pod ready: /ready), smoke-tests it through its own Service, then moves the
# public Service's selector. The switch first scales the new colour to at
# least the live one's size, so capacity holds; the old colour keeps its pods
# (its HPA shrinks it to its minimum after five quiet minutes) for a rollback,
# which is the same switch back.
#
# Sourced by deploy/deploy.sh (which provides say, die and expected_sha).
# Environment:
#   KUBE_OVERLAY      deploy/kubernetes/overlays/<name> to apply       (staging)
#   KUBE_NAMESPACE    the overlay's namespace                          (churn-<overlay>)
#   KUBE_CONTEXT      the kubeconfig context                           (the current one)
#   KUBE_PUBLIC_URL   the clients' URL (the ingress), checked after a switch; unset:
#                     a `kubectl port-forward` to the public Service
#   SWITCH_TIMEOUT    seconds for the Service's endpoints to follow a switch   (60)
# The smoke tests reach a colour with `kubectl port-forward` on 127.0.0.1
# (ports chosen by kubectl), stopped when deploy.sh exits.

KUBE_OVERLAY=${KUBE_OVERLAY:-staging}
[[ $KUBE_OVERLAY =~ ^[a-z0-9][a-z0-9_-]*$ ]] ||
    die "KUBE_OVERLAY '$KUBE_OVERLAY' is not an overlay name (a folder of deploy/kubernetes/overlays)"
KUBE_OVERLAY_DIR=$REPO_ROOT/deploy/kubernetes/overlays/$KUBE_OVERLAY
KUBE_NAMESPACE=${KUBE_NAMESPACE:-churn-$KUBE_OVERLAY}
KUBE_NAME=churn-serving
SWITCH_TIMEOUT=${SWITCH_TIMEOUT:-60}
KUBE_FORWARDS=$(mktemp -d)

_stop_forwards() {
    local pid
    if [[ -f $KUBE_FORWARDS/pids ]]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$KUBE_FORWARDS/pids"
    fi
    rm -rf "$KUBE_FORWARDS"
}
trap _stop_forwards EXIT

_k() { kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} --namespace "$KUBE_NAMESPACE" "$@"; }

_other() { if [[ $1 == blue ]]; then echo green; else echo blue; fi; }

# _replicas SLOT: the colour's Deployment size (0 when it does not exist).
_replicas() {
    local n
    n=$(_k get deployment "$KUBE_NAME-$1" -o 'jsonpath={.spec.replicas}' 2>/dev/null) || n=0
    echo "${n:-0}"
}

# _ready SLOT: wait until every pod of the colour is ready, or die.
_ready() {
    local slot=$1
    if ! _k rollout status "deployment/$KUBE_NAME-$slot" --timeout "${READY_TIMEOUT}s"; then
        target_logs "$slot" >&2 || true
        die "the $slot colour was not ready within ${READY_TIMEOUT}s: traffic stays on $(target_live || true)"
    fi
}

# _forward RESOURCE: a local port to RESOURCE's port 80; prints its URL.
_forward() {
    local log port deadline=$((SECONDS + 15))
    log=$(mktemp "$KUBE_FORWARDS/forward.XXXXXX")
    kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} --namespace "$KUBE_NAMESPACE" \
        port-forward "$1" :80 --address 127.0.0.1 >"$log" 2>&1 &
    echo $! >>"$KUBE_FORWARDS/pids"
    until port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log") && [[ -n $port ]]; do
        ((SECONDS < deadline)) || die "kubectl port-forward $1 did not start: $(cat "$log")"
        sleep 0.2
    done
    echo "http://127.0.0.1:$port"
}

target_prepare() {
    command -v kubectl >/dev/null || die "kubectl not found: make install puts it in .venv/bin"
    [[ -f $KUBE_OVERLAY_DIR/kustomization.yaml ]] ||
        die "no overlay '$KUBE_OVERLAY' ($KUBE_OVERLAY_DIR/kustomization.yaml does not exist)"
    _k get namespace "$KUBE_NAMESPACE" -o name >/dev/null ||
        die "namespace $KUBE_NAMESPACE not reachable: create it, and check kubectl's context"
    # Idempotent: what the deploys set (image, model pin, sizes, the selector)
    # is left alone while the manifests' placeholders stay unchanged.
    _k apply -k "$KUBE_OVERLAY_DIR" >/dev/null
    say "manifests of $KUBE_OVERLAY applied in namespace $KUBE_NAMESPACE"
}

target_live() {
    local slot
    slot=$(_k get service "$KUBE_NAME" -o 'jsonpath={.spec.selector.slot}' 2>/dev/null) || true
    if [[ $slot == blue || $slot == green ]]; then echo "$slot"; fi
    return 0
}

target_start() {
    local slot=$1 image=$2 sha live size minimum
    [[ $image == *@sha256:* ]] ||
        die "the kubernetes target deploys images by digest (REPOSITORY@sha256:...), not '$image'"
    sha=$(expected_sha)
    [[ -n $sha ]] || die "no model to pin: set EXPECT_SHA256 or put the model in $MODEL_DIR"
    live=$(target_live)
    # As large as the live colour, at least the HPA's minimum: ready for all the traffic.
    size=$(if [[ -n $live ]]; then _replicas "$live"; else echo 0; fi)
    minimum=$(_k get hpa "$KUBE_NAME-$slot" -o 'jsonpath={.spec.minReplicas}')
    ((size >= ${minimum:-1})) || size=${minimum:-1}
    _k patch deployment "$KUBE_NAME-$slot" --type strategic --patch "$(printf \
        '{"spec":{"replicas":%d,"template":{"spec":{"containers":[{"name":"serving","image":"%s","env":[{"name":"CHURN_MODEL_SHA256","value":"%s"}]}]}}}}' \
        "$size" "$image" "$sha")" >/dev/null
    _ready "$slot"
}

target_slot_url() { _forward "service/$KUBE_NAME-$1"; }

target_public_url() {
    if [[ -n ${KUBE_PUBLIC_URL:-} ]]; then echo "$KUBE_PUBLIC_URL"; else _forward "service/$KUBE_NAME"; fi
}

target_switch() {
    local slot=$1 old size deadline pods
    old=$(_other "$slot")
    # Both colours at full size across the switch.
    size=$(_replicas "$old")
    if (($(_replicas "$slot") < size)); then
        _k scale "deployment/$KUBE_NAME-$slot" --replicas "$size" >/dev/null
        _ready "$slot"
    fi
    _k patch service "$KUBE_NAME" --type merge \
        --patch "{\"spec\":{\"selector\":{\"slot\":\"$slot\"}}}" >/dev/null
    # In effect once the Service's endpoints are the new colour's pods only.
    deadline=$((SECONDS + SWITCH_TIMEOUT))
    until pods=$(_k get endpointslices -l "kubernetes.io/service-name=$KUBE_NAME" \
        -o 'jsonpath={range .items[*].endpoints[*]}{.targetRef.name}{"\n"}{end}') &&
        [[ -n $pods ]] && ! grep -qv "^$KUBE_NAME-$slot-" <<<"$pods"; do
        ((SECONDS < deadline)) ||
            die "the Service still routes to '${pods//$'\n'/ }' ${SWITCH_TIMEOUT}s after the switch to $slot"
        sleep 1
    done
}

target_image() {
    local found
    found=$(_k get deployment "$KUBE_NAME-$1" \
        -o 'jsonpath={.spec.replicas} {.spec.template.spec.containers[?(@.name=="serving")].image}' \
        2>/dev/null) || return 0
    # A colour scaled to 0 (or never deployed) has nothing to serve a rollback with.
    if [[ ${found%% *} =~ ^[1-9][0-9]*$ ]]; then echo "${found#* }"; fi
    return 0
}

target_logs() {
    _k get pods -l "slot=$1" -o wide 2>&1
    _k logs "deployment/$KUBE_NAME-$1" --all-containers --tail 40 2>&1
}

target_teardown() {
    _k delete -k "$KUBE_OVERLAY_DIR" --ignore-not-found >/dev/null
    say "removed the $KUBE_OVERLAY manifests from namespace $KUBE_NAMESPACE"
}
