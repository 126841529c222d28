#!/usr/bin/env bash
# System packages the tests use: stress-ng, fio, iperf3 (co-tenants), prometheus-alertmanager, Debian's influxdb (1.x server), victoria-metrics (a real /api/v2/write
# server, from Debian trixie, unpacked with dpkg -x), chromium (headless browser tests), prometheus (promtool).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
command -v influxd >/dev/null || need+=(influxdb)
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)  # promtool: the /metrics expositions are checked with it
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)  # live alerts end to end
command -v stress-ng >/dev/null || need+=(stress-ng)  # co-tenants: CPU and memory (the real experiments)
command -v fio >/dev/null || need+=(fio)  # co-tenant: storage I/O
command -v iperf3 >/dev/null || need+=(iperf3)  # co-tenant: bulk network transfer over a shaped veth link
command -v tc >/dev/null || need+=(iproute2)  # ip netns, veth and tc: the shaped link of the network experiment
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# victoria-metrics: trixie's package, unpacked into /opt/victoria-metrics (no service started)
if ! command -v victoria-metrics >/dev/null && [ ! -x /opt/victoria-metrics/usr/bin/victoria-metrics ]; then
  tmp=$(mktemp -d)
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$tmp/trixie.list"
  o=(-o Dir::Etc::SourceList="$tmp/trixie.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache")
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  $SUDO apt-get "${o[@]}" update -qq
  (cd "$tmp" && apt-get "${o[@]}" download victoria-metrics >/dev/null)
  $SUDO dpkg -x "$tmp"/victoria-metrics_*.deb /opt/victoria-metrics
  rm -rf "$tmp"
fi
echo "influxd: $(command -v influxd)  chromium: $(command -v chromium)  promtool: $(command -v promtool)  alertmanager: $(command -v prometheus-alertmanager)  stress-ng: $(command -v stress-ng)  victoria-metrics: $(ls /opt/victoria-metrics/usr/bin/victoria-metrics 2>/dev/null || command -v victoria-metrics)"
