# Checks for guest.sh (sourced): each one either notes PASS with what it saw, or dies.
# Uses note/ok/die/pw/guide from guest.sh.

PROM=http://127.0.0.1:9090
TLS_ARGS=(-h mqtt.abilene-1.example -p 8883 --cafile /etc/mosquitto/ca_certificates/site-ca.crt)

# py EXPR: evaluate EXPR on the JSON document on stdin (as `d`); exit 0 when true.
py() { python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }

check_broker() {
    CURRENT="check broker"
    mosquitto_pub "${TLS_ARGS[@]}" -u ercot-feed -P "$(pw ercot-feed)" -t ercot/prices/probe -m '{}' \
        || die "ercot-feed cannot publish over TLS"
    local out
    if out=$(mosquitto_pub "${TLS_ARGS[@]}" -u ercot-feed -P wrong -t ercot/prices/x -m 1 2>&1); then
        die "a wrong password was accepted"
    fi
    ok "wrong password refused: $out"
    if out=$(mosquitto_pub -h 127.0.0.1 -p 1883 -t ercot/prices/x -m 1 2>&1); then
        die "an anonymous client was accepted on 1883"
    fi
    ok "anonymous refused on 1883: $out"
    if out=$(mosquitto_pub -h mqtt.abilene-1.example -p 8883 --capath /etc/ssl/certs \
        -u ercot-feed -P "$(pw ercot-feed)" -t ercot/prices/x -m 1 2>&1); then
        die "a client trusting another CA completed the handshake"
    fi
    ok "client without the site CA fails the TLS handshake: $out"
    # The guide's own ACL check (deploy/README.md 3.5), its subscriber's output captured.
    CURTAILD_PW=$(pw curtaild) C01_PW=$(pw pool-c01)
    (
        guide readme-3.5-1
        sleep 2
        kill $(jobs -p) 2>/dev/null || true
    ) >"$OUT/acl-check.txt" 2>&1
    CURRENT="check broker ACL"
    cat "$OUT/acl-check.txt"
    grep -q '^curtaild/abilene-1/pools/c01/state ok$' "$OUT/acl-check.txt" \
        || die "the allowed publish (pool-c01 to its own state) did not arrive"
    grep -q '^curtaild/abilene-1/pools/c02/state' "$OUT/acl-check.txt" && die "pool-c01 could write pool c02's state"
    ok "ACL: pool-c01's own state arrives, its write to c02's state is dropped"
}

check_started() {
    CURRENT="check started"
    systemctl is-active --quiet curtaild || { journalctl -u curtaild -b --no-pager | tail -40; die "curtaild not active"; }
    local show
    show=$(systemctl show curtaild -p Type -p ActiveState -p SubState -p NRestarts -p MainPID -p StatusText \
        -p WatchdogUSec -p WatchdogTimestampMonotonic | tr '\n' ' ')
    echo "$show"
    grep -q 'Type=notify' <<<"$show" && grep -q 'SubState=running' <<<"$show" || die "not running: $show"
    local pid user
    pid=$(systemctl show -p MainPID --value curtaild)
    user=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    ok "curtaild active (running), Type=notify so READY=1 arrived; pid $pid as uid $user (DynamicUser); $show"
    journalctl -u curtaild -b --no-pager -o cat | grep -iE '"level": ?"(error|critical)"' && die "errors in the journal"
    ok "no error in journalctl -u curtaild -b"
    local w0
    w0=$(systemctl show -p WatchdogTimestampMonotonic --value curtaild)
    sleep 6  # WatchdogSec=10: a ping at least every 5 s moves the timestamp
    [ "$(systemctl show -p WatchdogTimestampMonotonic --value curtaild)" != "$w0" ] || die "no WATCHDOG=1 ping in 6 s"
    ok "watchdog pings arrive (WatchdogTimestamp $(systemctl show -p WatchdogTimestamp --value curtaild))"
}

check_reload() {
    CURRENT="check reload"
    local pid
    pid=$(systemctl show -p MainPID --value curtaild)
    systemctl reload curtaild
    sleep 3
    systemctl is-active --quiet curtaild || die "not active after reload"
    [ "$(systemctl show -p MainPID --value curtaild)" = "$pid" ] || die "reload restarted the daemon"
    ok "systemctl reload curtaild: same pid $pid, still active"
}

# The price feed's part: one SCED LMP record for HB_WEST, timed now (Central time), over TLS.
publish_price() {
    CURRENT="publish price"
    local ts
    ts=$(TZ=America/Chicago date +%Y-%m-%dT%H:%M:%S)
    mosquitto_pub "${TLS_ARGS[@]}" -u ercot-feed -P "$(pw ercot-feed)" -q 1 -t ercot/prices/np6-788-cd \
        -m "{\"SCEDTimestamp\":\"$ts\",\"repeatHourFlag\":false,\"settlementPoint\":\"HB_WEST\",\"LMP\":$1}"
    note "operator: price feed published LMP $1 at $ts (as ercot-feed, TLS)"
}

metric() { curl -sf 127.0.0.1:9108/metrics | grep -E "^$1" || true; }

check_metrics() {
    CURRENT="check metrics"
    local i m t0=$SECONDS
    for i in $(seq 30); do
        m=$(curl -sf 127.0.0.1:9108/metrics) || m=""
        if grep -q '^curtaild_mqtt_connected 1' <<<"$m" && ! grep -qE '^curtaild_device_up\{.*\} 0' <<<"$m" \
            && ! grep -qE '^curtaild_failsafe_active\{.*\} 1' <<<"$m" && grep -q '^curtaild_device_up' <<<"$m" \
            && grep -q 'curtaild_price_usd_per_mwh{product="sced_lmp"} 31.5' <<<"$m"; then
            break
        fi
        sleep 1
    done
    grep -E '^curtaild_(mqtt_connected|device_up|failsafe_active|feed_age_seconds|price_usd|site_power|gpu_power|mining_power|protected_write|build_info)' <<<"$m"
    grep -q '^curtaild_mqtt_connected 1' <<<"$m" || die "curtaild_mqtt_connected is not 1"
    grep -qE '^curtaild_device_up\{.*\} 0' <<<"$m" && die "a device is down"
    grep -qE '^curtaild_failsafe_active\{.*\} 1' <<<"$m" && die "a fail-safe is active"
    grep -q 'curtaild_price_usd_per_mwh{product="sced_lmp"} 31.5' <<<"$m" || die "the price did not arrive"
    grep -q '^curtaild_protected_write_refused_total 0.0' <<<"$m" || die "protected writes refused"
    ok "metrics: mqtt_connected 1, $(grep -c '^curtaild_device_up' <<<"$m") devices up, no fail-safe, price 31.5 seen, no protected write (after $((SECONDS - t0))s)"
}

status_json() { curtaild status --config ~/curtaild-op.toml --json; }

# wait_status PY-EXPR SECONDS: until the operator's `curtaild status --json` satisfies it.
wait_status() {
    local i
    for i in $(seq "$2"); do
        status_json 2>/dev/null | py "$1" && { note "status: $1"; return 0; }
        sleep 1
    done
    status_json || true
    die "status never showed: $1"
}

check_status_online() {
    CURRENT="check status"
    wait_status 'd["status"]["state"] == "online" and set(d["plan"]["pools"]) == {"c01","c02","c03"} and not d["override"]["active"]' 20
    curtaild status --config ~/curtaild-op.toml
    ok "curtaild status (as op-jdoe over TLS): online, plan with c01 c02 c03, override auto"
}

check_prometheus() {
    CURRENT="check prometheus"
    local i t0=$SECONDS
    for i in $(seq 60); do
        curl -sf "$PROM/api/v1/query" --data-urlencode 'query=up{job="curtaild"}' |
            py 'd["data"]["result"] and d["data"]["result"][0]["value"][1] == "1"' && break
        sleep 1
    done
    curl -sf "$PROM/api/v1/query" --data-urlencode 'query=up{job="curtaild"}' |
        py 'd["data"]["result"] and d["data"]["result"][0]["value"][1] == "1"' || die "target not up"
    ok "Prometheus: up{job=\"curtaild\"} == 1 (after $((SECONDS - t0))s)"
    local rules
    rules=$(curl -sf "$PROM/api/v1/rules" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(r["name"] for g in d["data"]["groups"] for r in g["rules"]))')
    grep -qw CurtaildDown <<<"$rules" || die "rules not loaded: $rules"
    ok "Prometheus rules loaded: $rules"
}

check_version() {
    CURRENT="check version $1"
    check_started
    /opt/curtaild/.venv/bin/curtaild --version | grep -q "$1" || die "curtaild --version is not $1"
    local i
    for i in $(seq 20); do metric curtaild_build_info | grep -q "version=\"$1\"" && break; sleep 1; done
    metric curtaild_build_info | grep -q "version=\"$1\"" || die "build_info is not $1"
    wait_status "d['status']['version'] == '$1' and d['status']['state'] == 'online'" 20
    ok "running $1: --version, curtaild_build_info and the retained status agree"
}

check_alert_down() {
    CURRENT="check alert CurtaildDown"
    systemctl stop curtaild
    note "curtaild stopped; waiting for CurtaildDown (for: 1m)"
    local i state="" seen="" t0=$SECONDS
    for i in $(seq 180); do
        state=$(curl -sf "$PROM/api/v1/alerts" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(a["state"] for a in d["data"]["alerts"] if a["labels"]["alertname"]=="CurtaildDown"))')
        case "$state" in *pending*) [ -z "$seen" ] && { seen=pending; note "CurtaildDown pending $((SECONDS - t0))s after the stop"; } ;; esac
        case "$state" in *firing*) break ;; esac
        sleep 1
    done
    [[ "$state" == *firing* ]] || die "CurtaildDown never fired (state: $state)"
    ok "alert CurtaildDown firing $((SECONDS - t0))s after the stop (pending seen: ${seen:-no})"
}

check_hardening() {
    CURRENT="check hardening"
    systemd-analyze security curtaild --no-pager | tail -1
    local dir
    dir=$(stat -c '%u %a' /var/lib/private/curtaild)
    ok "systemd-analyze security: $(systemd-analyze security curtaild --no-pager | tail -1 | sed 's/.*level for //'); state dir owner/mode: $dir"
}
