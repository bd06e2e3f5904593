# shellcheck shell=bash
# Deploy target "podman": one host, two containers and nginx in front.
#
#   clients ──▶ nginx  $DEPLOY_BIND:$DEPLOY_PORT ──▶ churn-blue   $DEPLOY_BIND:$BLUE_PORT
#                                                └─▶ churn-green  $DEPLOY_BIND:$GREEN_PORT
#
# nginx proxies to the live slot only. A switch rewrites the one-line
# upstream file and reloads nginx: the master starts workers with the new
# upstream and lets the old ones finish the requests they hold, so no request
# in flight fails. The idle slot keeps running: a rollback is a switch back.
#
# Sourced by deploy/deploy.sh (which provides say, die, podman, RUN_LIMITS and
# ensure_tools from containers/common.sh). Environment:
#   DEPLOY_STATE_DIR   nginx's configuration, pid and logs                (~/.local/state/churn-deploy)
#   DEPLOY_NAME        prefix of the container names                      (churn)
#   DEPLOY_BIND        address nginx and the slots listen on              (127.0.0.1)
#   DEPLOY_PORT        the public port (nginx)                            (8080)
#   BLUE_PORT, GREEN_PORT  each slot's own port                           (8081, 8082)
#   PULL               podman run --pull: always, missing or never        (missing)
#   REGISTRY_USER, REGISTRY_PASSWORD  registry login before the pull, when set
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

_nginx() { command nginx -p "$DEPLOY_STATE_DIR" -c "$DEPLOY_STATE_DIR/nginx.conf" "$@"; }
_reload() {  # nginx -s reload, quiet unless it fails
    local out
    out=$(_nginx -s reload 2>&1) || { echo "$out" >&2; die "nginx -s reload failed"; }
}
_container() { echo "$DEPLOY_NAME-$1"; }
_port() { if [[ $1 == blue ]]; then echo "$BLUE_PORT"; else echo "$GREEN_PORT"; fi; }
_connect_host() { if [[ $DEPLOY_BIND == 0.0.0.0 ]]; then echo 127.0.0.1; else echo "$DEPLOY_BIND"; fi; }

_write_upstream() {  # _write_upstream SLOT: atomically replace the file nginx includes
    local slot=$1 file=$DEPLOY_STATE_DIR/upstream.conf
    cat >"$file.new" <<EOF
# Written by deploy/targets/podman.sh: the live slot is $slot.
upstream churn_live {
    server $(_connect_host):$(_port "$slot");
    keepalive 16;
}
map \$host \$churn_slot { default $slot; }
EOF
    mv "$file.new" "$file"
}

target_prepare() {
    ensure_tools podman "${PODMAN_RUNTIME:-runc}" nginx curl
    mkdir -p "$DEPLOY_STATE_DIR/tmp"
    cat >"$DEPLOY_STATE_DIR/nginx.conf" <<EOF
# Written by deploy/targets/podman.sh; the live slot is in upstream.conf.
worker_processes 1;
pid $DEPLOY_STATE_DIR/nginx.pid;
error_log $DEPLOY_STATE_DIR/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DEPLOY_STATE_DIR/tmp/body;
    proxy_temp_path $DEPLOY_STATE_DIR/tmp/proxy;
    fastcgi_temp_path $DEPLOY_STATE_DIR/tmp/fastcgi;
    uwsgi_temp_path $DEPLOY_STATE_DIR/tmp/uwsgi;
    scgi_temp_path $DEPLOY_STATE_DIR/tmp/scgi;
    include $DEPLOY_STATE_DIR/upstream.conf;
    server {
        listen $DEPLOY_BIND:$DEPLOY_PORT;
        # The service enforces its own body limit (CHURN_MAX_BODY_BYTES).
        client_max_body_size 8m;
        location / {
            proxy_pass http://churn_live;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            add_header X-Churn-Slot \$churn_slot always;
        }
    }
}
EOF
    [[ -f $DEPLOY_STATE_DIR/upstream.conf ]] || _write_upstream blue
    if [[ -f $DEPLOY_STATE_DIR/nginx.pid ]] && kill -0 "$(cat "$DEPLOY_STATE_DIR/nginx.pid")" 2>/dev/null; then
        _nginx -t -q && _reload
    else
        _nginx -t -q
        _nginx
        say "nginx listening on $DEPLOY_BIND:$DEPLOY_PORT"
    fi
}

target_live() {
    [[ -f $DEPLOY_STATE_DIR/live ]] && cat "$DEPLOY_STATE_DIR/live"
    return 0
}

target_start() {
    local slot=$1 image=$2 name
    name=$(_container "$slot")
    podman rm --force --time 10 "$name" >/dev/null 2>&1 || true
    [[ $PULL == never ]] || registry_login "$image"
    local errors
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
    local slot=$1 deadline served
    _write_upstream "$slot"
    _nginx -t -q
    _reload
    # Old workers drain in the background; wait until new requests reach SLOT.
    deadline=$((SECONDS + SWITCH_TIMEOUT))
    until served=$(curl -fsS -o /dev/null -D - "$(target_public_url)/health" 2>/dev/null |
        tr -d '\r' | awk 'tolower($1) == "x-churn-slot:" { print $2 }') && [[ $served == "$slot" ]]; do
        ((SECONDS < deadline)) || die "nginx still routes to '${served:-nothing}' ${SWITCH_TIMEOUT}s after the switch to $slot"
        sleep 0.1
    done
    echo "$slot" >"$DEPLOY_STATE_DIR/live"
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
    if [[ -f $DEPLOY_STATE_DIR/nginx.pid ]] && kill -0 "$(cat "$DEPLOY_STATE_DIR/nginx.pid")" 2>/dev/null; then
        _nginx -s quit
    fi
    for slot in blue green; do
        podman rm --force --time 10 "$(_container "$slot")" >/dev/null 2>&1 || true
    done
    rm -f "$DEPLOY_STATE_DIR/live" "$DEPLOY_STATE_DIR/upstream.conf"
    say "removed the $DEPLOY_NAME slots and nginx ($DEPLOY_STATE_DIR kept)"
}
