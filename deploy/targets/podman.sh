# shellcheck shell=bash
# Deploy target "podman": one host, two containers and HAProxy in front.
#
#   clients ──▶ HAProxy $DEPLOY_BIND:$DEPLOY_PORT ──▶ churn-blue   $DEPLOY_BIND:$BLUE_PORT
#                                                 └─▶ churn-green  $DEPLOY_BIND:$GREEN_PORT
#
# HAProxy knows both slots and sends each request to the one in the "ready"
# state; the other is in "maint". A switch changes the two states through
# HAProxy's runtime API (its admin socket): no reload, no restart, no client
# connection closed. Requests in flight finish on the slot they started on;
# the next request, even on the same keep-alive connection, goes to the new
# slot. (A proxy that switches by reloading its configuration, nginx for
# one, closes idle keep-alive connections as its old workers exit, and a
# client that sends a request at that moment gets a reset: the deploy test
# under load caught exactly that.) The idle slot keeps running: a rollback is
# a switch back.
#
# Sourced by deploy/deploy.sh (which provides say, die, podman, RUN_LIMITS,
# ensure_tools and registry_login from containers/common.sh). Environment:
#   DEPLOY_STATE_DIR   HAProxy's configuration, socket and pid; the live slot
#                      (~/.local/state/churn-deploy)
#   DEPLOY_NAME        prefix of the container names                      (churn)
#   DEPLOY_BIND        address HAProxy and the slots listen on            (127.0.0.1)
#   DEPLOY_PORT        the public port (HAProxy)                          (8080)
#   BLUE_PORT, GREEN_PORT  each slot's own port                           (8081, 8082)
#   PULL               podman run --pull: always, missing or never        (missing)
#   REGISTRY_USER, REGISTRY_PASSWORD  registry login before the pull, when set
#   DEPLOY_REQUEST_TIMEOUT   HAProxy's timeout http-request                 (10s)
#   DEPLOY_CLIENT_MAX_CONN   connections at once per client address         (100)
#   DEPLOY_CLIENT_MAX_RATE   requests per 10 s per client address           (20000)
#   DEPLOY_MAX_CONN          connections at once in all                     (4096)
# On a server, DEPLOY_BIND=0.0.0.0 (or a private address behind a TLS load
# balancer) exposes the service; the default keeps everything on loopback.

DEPLOY_STATE_DIR=${DEPLOY_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/churn-deploy}
DEPLOY_NAME=${DEPLOY_NAME:-churn}
DEPLOY_BIND=${DEPLOY_BIND:-127.0.0.1}
DEPLOY_PORT=${DEPLOY_PORT:-8080}
BLUE_PORT=${BLUE_PORT:-8081}
GREEN_PORT=${GREEN_PORT:-8082}
PULL=${PULL:-missing}
SWITCH_TIMEOUT=${SWITCH_TIMEOUT:-15}
DEPLOY_REQUEST_TIMEOUT=${DEPLOY_REQUEST_TIMEOUT:-10s}
DEPLOY_CLIENT_MAX_CONN=${DEPLOY_CLIENT_MAX_CONN:-100}
DEPLOY_CLIENT_MAX_RATE=${DEPLOY_CLIENT_MAX_RATE:-20000}
DEPLOY_MAX_CONN=${DEPLOY_MAX_CONN:-4096}

_container() { echo "$DEPLOY_NAME-$1"; }
_port() { if [[ $1 == blue ]]; then echo "$BLUE_PORT"; else echo "$GREEN_PORT"; fi; }
_connect_host() { if [[ $DEPLOY_BIND == 0.0.0.0 ]]; then echo 127.0.0.1; else echo "$DEPLOY_BIND"; fi; }

_haproxy_running() {
    [[ -f $DEPLOY_STATE_DIR/haproxy.pid ]] && kill -0 "$(cat "$DEPLOY_STATE_DIR/haproxy.pid")" 2>/dev/null
}

_api() {  # _api COMMAND: one command on HAProxy's admin socket; an answer means an error
    local answer
    answer=$(echo "$1" | socat stdio "unix-connect:$DEPLOY_STATE_DIR/haproxy.sock") ||
        die "HAProxy's admin socket did not take '$1'"
    [[ -z ${answer//[[:space:]]/} ]] || die "HAProxy refused '$1': $answer"
}

# haproxy_config BLUE_STATE GREEN_STATE: the configuration, on stdout ("" or
# "disabled" per slot). Hostile clients meet limits here before the service's
# own (docs/deploy.md):
#   timeout http-request   the whole request (head, and body: http-buffer-request)
#                          within DEPLOY_REQUEST_TIMEOUT, else 408
#   per client address     at most DEPLOY_CLIENT_MAX_CONN connections at once
#                          (more are refused) and DEPLOY_CLIENT_MAX_RATE requests
#                          per 10 s (more get 429)
#   maxconn                DEPLOY_MAX_CONN connections in all (more wait in the
#                          kernel's queue, not in HAProxy's memory)
haproxy_config() {
    local blue_state=$1 green_state=$2
    cat <<CONFIG
# Written by deploy/targets/podman.sh. The slots' states change at run time
# through the admin socket; the live slot is in $DEPLOY_STATE_DIR/live.
global
    daemon
    pidfile $DEPLOY_STATE_DIR/haproxy.pid
    stats socket $DEPLOY_STATE_DIR/haproxy.sock mode 600 level admin
    maxconn $DEPLOY_MAX_CONN
defaults
    mode http
    option http-keep-alive
    option http-buffer-request
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request $DEPLOY_REQUEST_TIMEOUT
    timeout http-keep-alive 60s
frontend public
    bind $DEPLOY_BIND:$DEPLOY_PORT
    maxconn $DEPLOY_MAX_CONN
    stick-table type ip size 100k expire 60s store conn_cur,http_req_rate(10s)
    tcp-request connection track-sc0 src
    tcp-request connection reject if { sc_conn_cur(0) gt $DEPLOY_CLIENT_MAX_CONN }
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt $DEPLOY_CLIENT_MAX_RATE }
    http-response set-header X-Churn-Slot %[srv_name]
    default_backend slots
backend slots
    server blue $(_connect_host):$BLUE_PORT $blue_state
    server green $(_connect_host):$GREEN_PORT $green_state
CONFIG
}

target_prepare() {
    ensure_tools podman "${PODMAN_RUNTIME:-runc}" haproxy socat curl
    mkdir -p "$DEPLOY_STATE_DIR"
    _haproxy_running && return 0
    # Started (again) with the live slot's server ready and the other in maintenance.
    local blue_state="" green_state=disabled
    if [[ $(target_live) == green ]]; then blue_state=disabled green_state=""; fi
    haproxy_config "$blue_state" "$green_state" >"$DEPLOY_STATE_DIR/haproxy.cfg"
    haproxy -c -q -f "$DEPLOY_STATE_DIR/haproxy.cfg"
    haproxy -f "$DEPLOY_STATE_DIR/haproxy.cfg"
    say "HAProxy listening on $DEPLOY_BIND:$DEPLOY_PORT"
}

target_live() {
    [[ -f $DEPLOY_STATE_DIR/live ]] && cat "$DEPLOY_STATE_DIR/live"
    return 0
}

target_start() {
    local slot=$1 image=$2 name errors
    name=$(_container "$slot")
    podman rm --force --time 10 "$name" >/dev/null 2>&1 || true
    [[ $PULL == never ]] || registry_login "$image"
    errors=$(mktemp)
    # As containers/test.sh runs it: read-only, no capabilities, loopback port.
    if ! podman run --detach --name "$name" "${RUN_LIMITS[@]}" \
        --pull "$PULL" --read-only --cap-drop all --security-opt no-new-privileges \
        --publish "$DEPLOY_BIND:$(_port "$slot"):8000" \
        --label "churn.deploy.slot=$slot" \
        ${CHURN_API_KEY:+--env CHURN_API_KEY} \
        "$image" >/dev/null 2>"$errors"; then
        cat "$errors" >&2
        rm -f "$errors"
        die "podman run $image failed"
    fi
    rm -f "$errors"
}

target_slot_url() { echo "http://$(_connect_host):$(_port "$1")"; }

target_public_url() { echo "http://$(_connect_host):$DEPLOY_PORT"; }

target_switch() {
    local slot=$1 old deadline served
    old=$(if [[ $slot == blue ]]; then echo green; else echo blue; fi)
    # Ready first, then maintenance: for an instant both slots take requests
    # (both passed their smoke test); at no instant does neither.
    _api "set server slots/$slot state ready"
    _api "set server slots/$old state maint"
    echo "$slot" >"$DEPLOY_STATE_DIR/live"
    deadline=$((SECONDS + SWITCH_TIMEOUT))
    until served=$(curl -fsS -o /dev/null -D - "$(target_public_url)/health" 2>/dev/null |
        tr -d '\r' | awk 'tolower($1) == "x-churn-slot:" { print $2 }') && [[ $served == "$slot" ]]; do
        ((SECONDS < deadline)) || die "HAProxy still routes to '${served:-nothing}' ${SWITCH_TIMEOUT}s after the switch to $slot"
        sleep 0.1
    done
}

target_image() {
    local name
    name=$(_container "$1")
    podman container exists "$name" || return 0
    podman inspect --format '{{.ImageName}}' "$name"
}

target_logs() { podman logs --tail 40 "$(_container "$1")" 2>&1; }

target_teardown() {
    local slot
    if _haproxy_running; then
        kill "$(cat "$DEPLOY_STATE_DIR/haproxy.pid")"
    fi
    for slot in blue green; do
        podman rm --force --time 10 "$(_container "$slot")" >/dev/null 2>&1 || true
    done
    rm -f "$DEPLOY_STATE_DIR/live" "$DEPLOY_STATE_DIR/haproxy.pid" "$DEPLOY_STATE_DIR/haproxy.sock"
    say "removed the $DEPLOY_NAME slots and HAProxy ($DEPLOY_STATE_DIR kept)"
}
