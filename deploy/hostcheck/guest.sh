#!/bin/bash
# Inside the VM, as root, at boot (hostcheck.service): docs/deploy.md from a fresh Debian 12,
# block by block, in one shell like an operator's terminal (cwd and variables carry over).
# blocks/NAME.sh are the guide's ```sh blocks (blocks.py); `guide NAME` runs one. What the
# guide leaves to the operator (editing the config, typing passwords, the site's devices and
# price feed) is done here and marked `operator:`; checks are `ok`/`check`. Results go to
# /hostcheck/out/result.txt; the VM powers off when this exits (the unit's ExecStopPost).
set -Eeuo pipefail
HC=/hostcheck
OUT=$HC/out
exec > >(tee -a "$OUT/guest.log") 2>&1
: >"$OUT/result.txt"
T0=$(date +%s)
CURRENT=setup

note() { printf '[%4ss] %s\n' $(($(date +%s) - T0)) "$*" | tee -a "$OUT/result.txt"; }
ok() { note "PASS $*"; }
die() {
    note "FAIL $*"
    note "RESULT: FAIL (at $CURRENT)"
    [ -e "$HC/keep" ] && debug_shell
    exit 1
}
# With HOSTCHECK_KEEP=1 (run.sh creates $HC/keep) a failed run stays up: drop a script into
# $HC/inbox/ and it runs in this shell (cwd, variables as they were); output in NAME.out.
debug_shell() {
    trap - ERR
    set +e
    mkdir -p "$HC/inbox"
    note "debug: the VM stays up; scripts dropped into $HC/inbox run here"
    while :; do
        for f in "$HC"/inbox/*.sh; do
            [ -e "$f" ] || continue
            mv "$f" "$f.running"
            # shellcheck disable=SC1090
            (source "$f.running") >"${f%.sh}.out" 2>&1
            echo "exit $?" >>"${f%.sh}.out"
            rm -f "$f.running"
        done
        sleep 1
    done
}
trap 'die "command failed (exit $?) in $CURRENT: $BASH_COMMAND"' ERR
operator() { CURRENT="operator: $*"; echo "=== operator: $*"; }

# guide NAME [SED-EXPR]: run the guide's block NAME in this shell (SED-EXPR fills a placeholder).
guide() {
    local name=$1 file=$HC/blocks/$1.sh
    [ -f "$file" ] || die "the guide has no block $name (reorganised? update guest.sh)"
    CURRENT="guide $name"
    if [ $# -gt 1 ]; then sed -i -e "$2" "$file"; fi
    echo "=== guide $name"
    sed 's/^/  | /' "$file"
    set -x
    # shellcheck disable=SC1090
    source "$file"
    { set +x; } 2>/dev/null
    note "ran $name"
}

# Passwords an operator would make up; the `curtaild` one is /etc/curtaild/mqtt_password.
pw() { printf '%s-pw-%s' "$1" "$(cat /etc/machine-id | cut -c1-12)"; }
source "$HC/guest-checks.sh"

note "host: $(. /etc/os-release; echo "$PRETTY_NAME"), $(uname -r), PID 1 = $(cat /proc/1/comm), $(systemctl --version | head -1)"
cd ~ && cp -r "$HC"/payload/* ~/

# 1-2. Packages and curtaild from the wheel (the git path needs a reachable git host).
guide deploy-1-1
guide deploy-2-2
WHEELHOUSE="s|pip install --require-hashes|pip install --no-index --find-links ~/wheelhouse --require-hashes|"
if /opt/curtaild/.venv/bin/python -c 'import urllib.request as u; u.urlopen("https://pypi.org/simple/pip/", timeout=30)'; then
    guide deploy-2-3
    WHEELHOUSE=""
else
    note "PyPI not reachable with a trusted certificate from this host: the guide's wheelhouse variant"
    guide deploy-2-4
fi
guide deploy-2-5
ok "installed: $(/opt/curtaild/.venv/bin/curtaild --version); venv $(du -sh /opt/curtaild/.venv | cut -f1)"

# 4. Config and secrets.
guide deploy-4-1
operator "edit the config: [mqtt] username = \"curtaild\" (everything else as the example)"
sed -i '/^\[mqtt\]/,/^\[/ s|^username = .*|username = "curtaild"|' /etc/curtaild/curtaild.toml
guide deploy-4-2 "s/the-broker-password/$(pw curtaild)/"
guide deploy-4-3

# 5. Mosquitto: deploy/README.md 3.1, 3.2, 3.3 (mosquitto_passwd reads each password twice).
guide readme-3.1-1
for user in curtaild ercot-feed qse-gateway pool-c01 op-jdoe; do
    printf '%s\n%s\n' "$(pw $user)" "$(pw $user)"
done >/root/typed-passwords
CURRENT="guide readme-3.1-2"; exec 3<&0 0</root/typed-passwords
guide readme-3.1-2
exec 0<&3 3<&-
guide readme-3.2-1
guide readme-3.2-2
guide readme-3.3-1
check_broker

# 6. Prometheus.
guide deploy-6-1

# The site: its devices (simulated on the config's ports) and its price feed.
operator "the site's devices: meters, PDUs, PLC, pool agent c01 (deploy/hostcheck/sim_site.py)"
systemd-run --unit=site-devices --property=Restart=no \
    --setenv=CURTAILD_MQTT__USERNAME=pool-c01 --setenv=CURTAILD_MQTT__PASSWORD="$(pw pool-c01)" \
    --setenv=CURTAILD_MQTT__CLIENT_ID=site-devices \
    /opt/curtaild/.venv/bin/python "$HC/sim_site.py" /etc/curtaild/curtaild.toml
sleep 3
systemctl is-active --quiet site-devices || { journalctl -u site-devices --no-pager; die "site devices"; }

# 8. First start.
guide deploy-8-1
check_started
publish_price 31.5
check_metrics
guide deploy-8-2 "s/op-jdoe-password/$(pw op-jdoe)/"
check_status_online
guide deploy-8-3
check_prometheus
check_reload

# 9. Upgrade to 0.2.0 (wheel) with an override in force, then roll back to 0.1.0.
LIMIT_2000='d["override"]["active"] and d["override"]["limit_kw"] == 2000'
operator "an override in force before the upgrade (limit 2000 kW): the store must keep it"
curtaild override --config ~/curtaild-op.toml limit 2000 --ttl 30m --reason "before upgrade"
wait_status "$LIMIT_2000" 20
guide deploy-9-1
guide deploy-9-3 "$WHEELHOUSE"
guide deploy-9-4
check_version 0.2.0
wait_status "$LIMIT_2000" 30 && ok "the override survived the upgrade restart (from the store)"
operator "after the backup, a new override (1500 kW) that the rollback will not have"
curtaild override --config ~/curtaild-op.toml limit 1500 --ttl 30m --reason "after backup"
wait_status 'd["override"]["active"] and d["override"]["limit_kw"] == 1500' 20
guide deploy-9-5
guide deploy-9-7
guide deploy-9-8
check_version 0.1.0
wait_status "$LIMIT_2000" 30 && ok "rollback: the backup's override (2000 kW) is back, not the later 1500 kW"
curtaild override --config ~/curtaild-op.toml auto --reason "end of host check"

# An alert that fires: the daemon stopped -> CurtaildDown pending, then firing (for: 1m).
check_alert_down
systemctl start curtaild
check_started
check_hardening

note "RESULT: PASS"
