#!/usr/bin/env bash
# Checks the operator files in deploy/ with the real tools, as CI does (and
# as you may before installing edited copies):
#   haproxy -c            deploy/haproxy/haproxy.cfg
#   promtool check rules  deploy/prometheus/pgreplica.rules.yml
#   promtool test rules   deploy/prometheus/pgreplica.rules.test.yml
#   systemd-analyze verify and security (offline, exposure <= 2.0)
#                         deploy/systemd/*.service
#   systemd-sysusers      deploy/systemd/pgreplica.sysusers.conf (into a scratch root)
# The units are verified as installed from this checkout: /opt/pgreplica is
# replaced by the checkout and each ExecStart runs with --help, so a unit
# whose program does not exist (or is not built: npm run build) fails.
# A missing tool is an error naming its Debian package, never a skip.
#
# Usage: deploy/check.sh        exit 0: all passed; 1: a check failed; 3: a tool is missing
set -euo pipefail

deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$deploy")
failed=0

need() { # need <program> <debian package>
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "deploy/check.sh: $1 is missing: apt-get install $2" >&2
    exit 3
  fi
}
need haproxy haproxy
need promtool prometheus
need systemd-analyze systemd
need systemd-sysusers systemd

step() { echo "--- $*"; }
fail() {
  echo "FAILED: $*" >&2
  failed=1
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

step "haproxy -c -f deploy/haproxy/haproxy.cfg"
haproxy -c -f "$deploy/haproxy/haproxy.cfg" || fail "haproxy.cfg"

step "promtool check rules / test rules"
promtool check rules "$deploy/prometheus/pgreplica.rules.yml" || fail "pgreplica.rules.yml"
(cd "$deploy/prometheus" && promtool test rules pgreplica.rules.test.yml) || fail "pgreplica.rules.test.yml"

step "systemd-analyze verify + security, ExecStart --help"
touch "$scratch/service.env"
for unit in "$deploy"/systemd/*.service; do
  name=$(basename "$unit")
  # Installed from this checkout, secrets from an (empty) scratch file.
  sed -e "s|/opt/pgreplica|$root|g" -e "s|^EnvironmentFile=.*|EnvironmentFile=$scratch/service.env|" "$unit" >"$scratch/$name"
  # verify exits 0 on some problems (unknown keys, bad values): any output fails too.
  if ! out=$(systemd-analyze verify "$scratch/$name" 2>&1) || [[ -n $out ]]; then
    fail "systemd-analyze verify $name: $out"
  fi
  systemd-analyze security --offline=yes --threshold=20 "$scratch/$name" | tail -n 1 || fail "$name: exposure above 2.0 (systemd-analyze security --offline=yes)"
  exec_start=$(sed -n 's/^ExecStart=//p' "$scratch/$name")
  # The command line as systemd runs it (no shell), with --help: the program exists and parses its arguments.
  read -r -a argv <<<"$exec_start"
  if ! "${argv[@]}" --help >/dev/null; then
    fail "$name: ExecStart does not run ($exec_start --help); is the checkout built (npm run build)?"
  fi
done

step "systemd-sysusers (into a scratch root)"
mkdir -p "$scratch/root/etc/sysusers.d"
cp "$deploy/systemd/pgreplica.sysusers.conf" "$scratch/root/etc/sysusers.d/pgreplica.conf"
if systemd-sysusers --root="$scratch/root" && grep -q '^pgreplica:' "$scratch/root/etc/passwd"; then
  echo "user pgreplica: $(grep '^pgreplica:' "$scratch/root/etc/passwd")"
else
  fail "pgreplica.sysusers.conf does not create the user pgreplica"
fi
for unit in "$deploy"/systemd/*.service; do
  user=$(sed -n 's/^User=//p' "$unit")
  [[ $user == pgreplica ]] || fail "$(basename "$unit") runs as '$user', not the user pgreplica.sysusers.conf creates"
done

if [[ $failed -ne 0 ]]; then
  echo "deploy/check.sh: FAILED" >&2
  exit 1
fi
echo "deploy/check.sh: all deploy files pass"
