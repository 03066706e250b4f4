#!/usr/bin/env bash
# CI for deploy/: runs the tools that check each file there. Called at the
# end of .ci/run (as root, CI=true, on a clean clone), which installs them
# before the tests (tests/front_proxy.rs and tests/prometheus.rs use them
# too); installs any still missing, and fails loudly when a tool is missing
# or a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "deploy check FAILED: $*" >&2; exit 1; }

# Debian packages: systemd-analyze (systemd), promtool (prometheus), nginx,
# haproxy, openssl for a test certificate.
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v promtool >/dev/null || need+=(prometheus)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v openssl >/dev/null || need+=(openssl)
command -v lintian >/dev/null || need+=(lintian)
command -v man >/dev/null || need+=(man-db)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing ${need[*]} and not root"
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"
for tool in systemd-analyze promtool nginx haproxy openssl lintian man dpkg; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== cargo build (the binary the unit files name)"
cargo build --locked --quiet
bin="$PWD/target/debug/mirrorgate"

# systemd-analyze verify checks that each Exec= command exists: the units
# name the installed /usr/bin/mirrorgate, so they are checked as rendered
# for the binary just built.
render_unit() {
    sed "s#/usr/bin/mirrorgate#$bin#g" "$1" > "$work/$(basename "$1")"
    echo "$work/$(basename "$1")"
}

echo "== systemd-analyze verify deploy/systemd/mirrorgate.service"
unit=$(render_unit deploy/systemd/mirrorgate.service)
systemd-analyze verify "$unit" || fail "systemd-analyze verify mirrorgate.service"
echo "== systemd-analyze security --offline=true --threshold=20 (exposure 2.0 at most)"
out=$(systemd-analyze security --offline=true --threshold=20 --no-pager "$unit") \
    || { echo "$out"; fail "mirrorgate.service exposure above 2.0"; }
echo "$out" | tail -n 1

echo "== promtool check rules deploy/prometheus/rules.yml"
promtool check rules deploy/prometheus/rules.yml || fail "promtool check rules"
echo "== promtool test rules deploy/prometheus/tests.yml"
promtool test rules deploy/prometheus/tests.yml || fail "promtool test rules"

# geoipupdate is in Debian's contrib, not on every machine: the service is
# verified with a stand-in executable at the path it names, beside the
# timer and mirrorgate's own unit (which it reloads).
echo "== systemd-analyze verify deploy/geoipupdate/*.service *.timer"
mkdir -p "$work/geoip-units"
printf '#!/bin/sh\nexit 0\n' > "$work/geoipupdate" && chmod +x "$work/geoipupdate"
sed "s#/usr/bin/geoipupdate#$work/geoipupdate#" deploy/geoipupdate/mirrorgate-geoipupdate.service \
    > "$work/geoip-units/mirrorgate-geoipupdate.service"
cp deploy/geoipupdate/mirrorgate-geoipupdate.timer "$work/geoip-units/"
cp "$unit" "$work/geoip-units/"
systemd-analyze verify "$work"/geoip-units/*.service "$work"/geoip-units/*.timer \
    || fail "systemd-analyze verify of the geoipupdate units"
grep -q '^EditionIDs GeoLite2-City GeoLite2-ASN$' deploy/geoipupdate/GeoIP.conf \
    || fail "GeoIP.conf no longer names the databases the README and the ConfigMap use"

# A throwaway certificate for the front proxies' TLS listeners.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=download.example.org \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || fail "openssl req"
cat "$work/cert.pem" "$work/key.pem" > "$work/cert+key.pem"

echo "== nginx -t (deploy/nginx/mirrorgate.conf inside a minimal nginx.conf)"
sed -e "s#/etc/ssl/certs/download.example.org.pem#$work/cert.pem#" \
    -e "s#/etc/ssl/private/download.example.org.key#$work/key.pem#" \
    deploy/nginx/mirrorgate.conf > "$work/site.conf"
printf 'pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n    include %s/site.conf;\n}\n' \
    "$work" "$work" > "$work/nginx.conf"
nginx -t -p "$work" -c "$work/nginx.conf" || fail "nginx -t"

echo "== haproxy -c -f deploy/haproxy/haproxy.cfg"
sed "s#/etc/haproxy/certs/download.example.org.pem#$work/cert+key.pem#" \
    deploy/haproxy/haproxy.cfg > "$work/haproxy.cfg"
haproxy -c -f "$work/haproxy.cfg" || fail "haproxy -c"

# kubernetes-validate (PyPI) in a venv of its own, pinned: it validates
# against the schemas of the Kubernetes version it was released with.
venv="${DEPLOY_VENV:-$work/venv}"
echo "== installing kubernetes-validate into $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || fail "python3 -m venv"
"$venv/bin/pip" install -q 'kubernetes-validate==1.37.0' || fail "pip install kubernetes-validate"
echo "== kubernetes-validate --strict deploy/kubernetes/*.yaml"
"$venv/bin/kubernetes-validate" --strict deploy/kubernetes/*.yaml || fail "kubernetes-validate"
# The config inside the ConfigMap, with its GeoIP files and token replaced by
# the demo database and a test token, passes mirrorgate's own check.
echo "== mirrorgate check-config on the ConfigMap's mirrorgate.yaml"
"$venv/bin/python" - "$work/k8s.yaml" <<'PY' || fail "extracting the ConfigMap's config"
import sys, yaml
doc = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["mirrorgate.yaml"])
PY
echo "test-token-0123456789" > "$work/admin-token"
sed -i -e "s#/var/lib/GeoIP/GeoLite2-City.mmdb#$PWD/geoip/demo-city.mmdb#" \
    -e "s#/var/lib/GeoIP/GeoLite2-ASN.mmdb#$PWD/geoip/demo-asn.mmdb#" \
    -e "s#/etc/mirrorgate/secret/admin-token#$work/admin-token#" "$work/k8s.yaml"
"$bin" check-config --config "$work/k8s.yaml" || fail "check-config on the ConfigMap's config"

# The Debian package: built by cargo-deb from the release binary, its man
# pages and completions; linted; installed on this machine, checked from the
# installed files, and purged, leaving nothing behind.
if ! command -v cargo-deb >/dev/null; then
    echo "== cargo install --locked cargo-deb"
    cargo install --locked --quiet cargo-deb || fail "cargo install cargo-deb"
fi
echo "== cargo build --release; mirrorgate generate-docs; cargo deb"
cargo build --release --locked --quiet
rm -rf target/deb-docs target/debian
target/release/mirrorgate generate-docs target/deb-docs
# --strip: the release profile keeps line tables for backtraces; the package
# ships a stripped binary (lintian: unstripped-binary-or-object).
cargo deb --no-build --strip || fail "cargo deb"
deb=$(ls target/debian/mirrorgate_*.deb)
echo "== lintian $deb"
# Warnings that remain are explained in the README ("Debian package").
lintian --fail-on error --tag-display-limit 0 "$deb" || fail "lintian found errors"
if dpkg -s mirrorgate >/dev/null 2>&1; then
    fail "mirrorgate is already installed on this machine: not touching it (dpkg --purge mirrorgate first)"
fi
echo "== dpkg -i $deb"
# A failed check below must not leave the package installed for the next run.
trap 'dpkg -s mirrorgate >/dev/null 2>&1 && dpkg --purge mirrorgate >/dev/null; rm -rf "$work"' EXIT
dpkg -i "$deb" || fail "dpkg -i"
files=$(dpkg -L mirrorgate)
echo "== mirrorgate check-config --config /etc/mirrorgate/mirrorgate.yaml (installed)"
/usr/bin/mirrorgate check-config --config /etc/mirrorgate/mirrorgate.yaml || fail "check-config of the installed config"
echo "== man mirrorgate (installed)"
for page in mirrorgate mirrorgate-serve mirrorgate-check-config mirrorgate-locate \
    mirrorgate-explain mirrorgate-demo mirrorgate-manifest; do
    man -P cat "$page" 2>/dev/null | grep -q "$page" || fail "man $page"
done
# man-db keeps formatted copies of the pages just read; they are its cache,
# not the package's files, and go with the check that made them.
rm -f /var/cache/man/cat1/mirrorgate*.1.gz
[ -s /usr/share/bash-completion/completions/mirrorgate ] || fail "no bash completion"
dpkg-query -W -f='${Conffiles}\n' mirrorgate | grep -q /etc/mirrorgate/mirrorgate.yaml \
    || fail "/etc/mirrorgate/mirrorgate.yaml is not a conffile"
echo "== dpkg --purge mirrorgate"
dpkg --purge mirrorgate || fail "dpkg --purge"
left=""
while IFS= read -r f; do
    case "$f" in /|/.|/etc|/usr|/usr/*/|/usr/bin|/usr/share|/usr/share/*/) continue ;; esac
    [ -f "$f" ] && left="$left $f"
done <<< "$files"
[ -e /etc/mirrorgate ] && left="$left /etc/mirrorgate"
[ -e /usr/share/mirrorgate ] && left="$left /usr/share/mirrorgate"
extra=$(find /etc /usr /var/lib /var/cache -path /usr/local -prune -o -name '*mirrorgate*' -print 2>/dev/null || true)
[ -z "$extra" ] || left="$left $extra"
[ -z "$left" ] || fail "left behind after dpkg --purge:$left"

echo "deploy checks: all passed"
