#!/usr/bin/env bash
# Proxy benchmark of mirrorgate against nginx, in one command:
#
#     bash benches/proxy.sh
#
# It builds the release binary, installs nginx-light (and wrk) with apt-get
# when missing, and starts, all on 127.0.0.1:
#   - ONE mirror: nginx serving a 1 GiB file (sparse, so it costs no disk) and
#     SMALL_COUNT small files of 4-64 KiB (random bytes) from a temp dir;
#   - mirrorgate, `mode: proxy`, with that single mirror (no GeoIP);
#   - nginx as the reference proxy: `proxy_pass` to the same mirror,
#     worker_processes 1, upstream keep-alive, proxy_buffering on with 64 KiB
#     buffers (8 per connection), in memory only (proxy_max_temp_file_size 0:
#     never a body to disk). nginx's default buffers (4/8 KiB) halve its
#     throughput here; NGINX_PROXY_BUFFERS changes them.
# It checks that both proxies return the mirror's bytes, then measures in
# alternating rounds with the same wrk command for both:
#   (1) large: CONNECTIONS clients downloading the 1 GiB file at once for
#       DURATION (bytes/s; wrk counts bytes as they arrive), and mirrorgate's
#       peak RSS (VmHWM, reset before the run) during it;
#   (2) small: requests/s rotating over the small files.
# and prints medians and ratios: the ratio of each round's back-to-back pair
# (nginx first in odd rounds, mirrorgate first in even ones) and their median,
# which the verdict uses. Every process it starts is stopped on exit.
#
# Settings (environment variables, defaults in brackets):
#   ROUNDS [5]          rounds; each runs both proxies back to back, for each case
#   DURATION [10s]      length of one wrk run
#   WARMUP [2s]         unmeasured wrk run per server and case before round 1
#   CONNECTIONS [64]    wrk connections (= concurrent downloads)
#   THREADS [2]         wrk threads
#   SMALL_COUNT [1000]  number of small files
#   LARGE_MIB [1024]    size of the large file, MiB (at least 1024)
#   NGINX_PROXY_BUFFERS ["proxy_buffering on; proxy_buffer_size 64k; proxy_buffers 8 64k;"]
#                       the reference proxy's buffering directives
#   PIN [auto]          auto: both proxies on the last allowed CPU, wrk and the
#                       mirror on the others; off: no pinning
#   CARGO_TARGET_DIR    honoured as cargo does (default: target/ in the repo)
#   MIRRORGATE_BIN      measure this mirrorgate binary instead of building one
#                       (to compare two builds with the same script)
#   HOLD [off]          on: measure nothing; after the checks, keep the servers
#                       up (ports printed) until interrupted, for profiling

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SMALL_COUNT=${SMALL_COUNT:-1000}
LARGE_MIB=${LARGE_MIB:-1024}
PIN=${PIN:-auto}
NGINX_PROXY_BUFFERS=${NGINX_PROXY_BUFFERS:-proxy_buffering on; proxy_buffer_size 64k; proxy_buffers 8 64k;}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TARGET_RATIO=0.9
LARGE_PATH=/large/big-1GiB.bin

# shellcheck source=benches/load/common.sh
source "$ROOT/benches/load/common.sh"
# shellcheck source=benches/load/proxy-common.sh
source "$ROOT/benches/load/proxy-common.sh"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
[[ $SMALL_COUNT =~ ^[1-9][0-9]*$ ]] || die "SMALL_COUNT must be a positive number, not '$SMALL_COUNT'"
if ! [[ $LARGE_MIB =~ ^[0-9]+$ ]] || ((LARGE_MIB < 1024)); then
    die "LARGE_MIB must be a number of at least 1024, not '$LARGE_MIB'"
fi
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt_install nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- build ----------------------------------------------------------------------

if [[ -n ${MIRRORGATE_BIN:-} ]]; then
    MIRRORGATE=$MIRRORGATE_BIN
else
    say "building the release binary"
    cargo build --release --quiet --bin mirrorgate
    MIRRORGATE=$TARGET/release/mirrorgate
fi
[[ -x $MIRRORGATE ]] || die "$MIRRORGATE was not built (is CARGO_TARGET_DIR the one cargo used?)"

# --- the mirror's files -------------------------------------------------------------

say "writing the mirror's files: ${LARGE_MIB} MiB (sparse) and $SMALL_COUNT small files of 4-64 KiB"
DOCROOT=$RUN/mirror
mkdir -p "$DOCROOT/pub/large" "$DOCROOT/pub/small"
truncate -s "${LARGE_MIB}M" "$DOCROOT/pub$LARGE_PATH"
echo ok >"$DOCROOT/pub/health"
PATHS=$RUN/small-paths.txt
: >"$PATHS"
RANDOM=42
for i in $(seq -w 1 "$SMALL_COUNT"); do
    size=$(((4 + RANDOM % 61) * 1024))
    head -c "$size" /dev/urandom >"$DOCROOT/pub/small/f$i.bin"
    echo "/small/f$i.bin" >>"$PATHS"
done
SMALL_BYTES=$(du -sb "$DOCROOT/pub/small" | awk '{print $1}')
# The same client address on every request: the rotating script is reused for its paths.
echo 127.0.0.1 >"$RUN/addr.txt"

# --- servers ------------------------------------------------------------------------

MIRROR_PORT=$(free_port)
NGINX_PORT=$(free_port)
MG_PORT=$(free_port)
ADMIN_PORT=$(free_port)

nginx_conf mirror "$MIRROR_PORT" "root $DOCROOT;" >"$RUN/nginx-mirror.conf"
start mirror "$CLIENT_CPUS" "$NGINX" -p "$RUN/nginx-mirror" -c "$RUN/nginx-mirror.conf" -e stderr
wait_for mirror 20 curl -sf "http://127.0.0.1:$MIRROR_PORT/pub/health"

nginx_conf proxy "$NGINX_PORT" "location / { proxy_pass http://mirror/pub/; }" "$MIRROR_PORT" >"$RUN/nginx-proxy.conf"
start nginx "$SERVER_CPUS" "$NGINX" -p "$RUN/nginx-proxy" -c "$RUN/nginx-proxy.conf" -e stderr
NGINX_PID=$LAST_PID
wait_for nginx 20 curl -sf "http://127.0.0.1:$NGINX_PORT/health"
NGINX_WORKER=$(nginx_worker "$NGINX_PID")
[[ -n $NGINX_WORKER ]] || die "nginx (pid $NGINX_PID) has no worker process"

CONFIG=$RUN/mirrorgate.yaml
cat >"$CONFIG" <<EOF
listen: 127.0.0.1:$MG_PORT
admin_listen: 127.0.0.1:$ADMIN_PORT
mode: proxy
health:
  interval: 60s
  rise: 1
  path: health
mirrors:
  - name: local
    url: http://127.0.0.1:$MIRROR_PORT/pub/
    country: DE
    continent: EU
    latitude: 50.11
    longitude: 8.68
EOF
"$MIRRORGATE" check-config --config "$CONFIG" >/dev/null || die "the generated config is refused: $CONFIG"
start mirrorgate "$SERVER_CPUS" env RUST_LOG=warn "$MIRRORGATE" serve --config "$CONFIG"
MG_PID=$LAST_PID
wait_for mirrorgate 60 curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz"
say "mirror :$MIRROR_PORT, nginx proxy :$NGINX_PORT, mirrorgate :$MG_PORT (admin :$ADMIN_PORT)"

# --- checks: both proxies return the mirror's bytes -----------------------------------

say "checking that both proxies return the mirror's bytes"
for name in nginx mirrorgate; do
    if [[ $name == nginx ]]; then port=$NGINX_PORT; else port=$MG_PORT; fi
    for p in "$(head -n 1 "$PATHS")" "$(tail -n 1 "$PATHS")"; do
        cmp -s <(curl -sf "http://127.0.0.1:$port$p") "$DOCROOT/pub$p" || die "$name: $p differs from the mirror's file"
    done
    size=$(curl -sf -o /dev/null -w '%{size_download}' -r 0-1048575 "http://127.0.0.1:$port$LARGE_PATH")
    ((size == 1048576)) || die "$name: a 1 MiB range of $LARGE_PATH gave $size bytes"
    len=$(curl -sfI "http://127.0.0.1:$port$LARGE_PATH" | tr -d '\r' | awk 'tolower($1) == "content-length:" {print $2}')
    ((len == LARGE_MIB * 1048576)) || die "$name: Content-Length of $LARGE_PATH is '$len'"
    via=$(curl -sfI "http://127.0.0.1:$port$LARGE_PATH" | tr -d '\r' | awk 'tolower($1) == "via:"')
    if [[ $name == mirrorgate && $via != *mirrorgate* ]]; then
        die "mirrorgate did not proxy $LARGE_PATH (no Via: mirrorgate)"
    fi
done

if [[ ${HOLD:-off} == on ]]; then
    say "holding: mirrorgate pid $MG_PID on :$MG_PORT, nginx proxy on :$NGINX_PORT, small paths in $PATHS; Ctrl-C ends"
    while :; do sleep 3600; done
fi

# --- measuring ------------------------------------------------------------------------

RESULTS=$RUN/results.tsv
: >"$RESULTS"
RSS_START=$(proc_kib "$MG_PID" VmRSS)

say "warm-up: $WARMUP per server and case (not counted)"
for name in nginx mirrorgate; do
    if [[ $name == nginx ]]; then port=$NGINX_PORT; else port=$MG_PORT; fi
    proxy_run "$RUN/warmup-$name-small.txt" "http://127.0.0.1:$port/" "$WARMUP" "@$PATHS"
    proxy_run "$RUN/warmup-$name-large.txt" "http://127.0.0.1:$port$LARGE_PATH" "$WARMUP" "$LARGE_PATH"
done

say "measuring: $ROUNDS round(s) of $DURATION per case, nginx then mirrorgate"
# Odd rounds run nginx first, even rounds mirrorgate first: the machine's
# speed drifts, and a fixed order would hand the drift to one side.
measure_pair() {
    local case=$1 round=$2 first=$3
    local ng=(nginx "$case" "http://127.0.0.1:$NGINX_PORT$4" "$5" "$NGINX_WORKER" "$round")
    local mg=(mirrorgate "$case" "http://127.0.0.1:$MG_PORT$4" "$5" "$MG_PID" "$round")
    if [[ $first == nginx ]]; then
        proxy_measure "${ng[@]}"
        proxy_measure "${mg[@]}"
    else
        proxy_measure "${mg[@]}"
        proxy_measure "${ng[@]}"
    fi
}
for round in $(seq "$ROUNDS"); do
    first=nginx
    ((round % 2)) || first=mirrorgate
    measure_pair large "$round" "$first" "$LARGE_PATH" "$LARGE_PATH"
    measure_pair small "$round" "$first" / "@$PATHS"
done
RSS_END=$(proc_kib "$MG_PID" VmRSS)

# --- summary --------------------------------------------------------------------------

# col: 4 req/s, 5 MiB/s, 6 CPU%, 7 peak RSS (KiB)
med() { awk -F'\t' -v n="$1" -v k="$2" -v c="$3" '$1 == n && $2 == k {print $c}' "$RESULTS" | median_of_lines; }
maxcol() { awk -F'\t' -v n="$1" -v k="$2" -v c="$3" '$1 == n && $2 == k && $c > m {m = $c} END {print m + 0}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

L_NG=$(med nginx large 5) L_MG=$(med mirrorgate large 5)
S_NG=$(med nginx small 4) S_MG=$(med mirrorgate small 4)
S_NG_B=$(med nginx small 5) S_MG_B=$(med mirrorgate small 5)
LC_NG=$(med nginx large 6) LC_MG=$(med mirrorgate large 6)
SC_NG=$(med nginx small 6) SC_MG=$(med mirrorgate small 6)
# CPU time per small request (µs), the median of the rounds' own figures: it
# holds steadier than requests/s when other work takes CPU time from the proxies.
us_per_req() { awk -F'\t' -v n="$1" '$1 == n && $2 == "small" && $4 > 0 {print 1e4 * $6 / $4}' "$RESULTS" | median_of_lines; }
SU_NG=$(us_per_req nginx) SU_MG=$(us_per_req mirrorgate)
# The ratio of each round's pair (measured back to back, so under the same
# conditions), and their median: steadier than the ratio of the medians when
# the machine's speed changes between rounds.
round_ratios() { awk -F'\t' -v k="$1" -v c="$2" '$2 == k {v[$1, $3] = $c; if ($3 > n) n = $3}
    END {for (i = 1; i <= n; i++) if (v["nginx", i] > 0) printf "%.2f\n", v["mirrorgate", i] / v["nginx", i]}' "$RESULTS"; }
two_places() { awk '{printf "%.2f\n", $1}'; }
L_ROUNDS=$(round_ratios large 5 | tr '\n' ' ')
S_ROUNDS=$(round_ratios small 4 | tr '\n' ' ')
L_RATIO=$(round_ratios large 5 | median_of_lines | two_places)
S_RATIO=$(round_ratios small 4 | median_of_lines | two_places)
L_MED_RATIO=$(ratio "$L_MG" "$L_NG")
S_MED_RATIO=$(ratio "$S_MG" "$S_NG")
PEAK_MG=$(maxcol mirrorgate large 7)
PEAK_NG=$(maxcol nginx large 7)
PEAK_MG_SMALL=$(maxcol mirrorgate small 7)

echo
echo "mirrorgate proxy benchmark: median of $ROUNDS round(s), $DURATION each, $CONNECTIONS connections"
printf '  %-34s %14s %14s %7s\n' case nginx mirrorgate ratio
printf '  %-34s %14.0f %14.0f %7s\n' "large ($LARGE_MIB MiB x $CONNECTIONS), MiB/s" "$L_NG" "$L_MG" "$L_MED_RATIO"
printf '  %-34s %14.0f %14.0f %7s\n' "small ($SMALL_COUNT files 4-64 KiB), req/s" "$S_NG" "$S_MG" "$S_MED_RATIO"
printf '  %-34s %14.0f %14.0f\n' "small, MiB/s" "$S_NG_B" "$S_MG_B"
printf '  %-34s %13.0f%% %13.0f%%\n' "server CPU, large" "$LC_NG" "$LC_MG"
printf '  %-34s %13.0f%% %13.0f%%\n' "server CPU, small" "$SC_NG" "$SC_MG"
printf '  %-34s %14.1f %14.1f %7s\n' "small, CPU-us/req (nginx/mg)" "$SU_NG" "$SU_MG" "$(ratio "$SU_NG" "$SU_MG")"
echo "  ratio of each round's pair, by round, large: ${L_ROUNDS}(median $L_RATIO)"
echo "  ratio of each round's pair, by round, small: ${S_ROUNDS}(median $S_RATIO)"
echo
echo "  mirrorgate RSS: $((RSS_START / 1024)) MiB after start, $((RSS_END / 1024)) MiB at the end"
echo "  mirrorgate peak RSS (VmHWM) during the large runs: $((PEAK_MG / 1024)) MiB;" \
    "during the small runs: $((PEAK_MG_SMALL / 1024)) MiB"
echo "  nginx proxy worker peak RSS during the large runs: $((PEAK_NG / 1024)) MiB"
echo "  mirror:   nginx, sendfile, $((SMALL_BYTES / 1024)) KiB of small files; proxies on loopback, HTTP/1.1 keep-alive to it"
echo "  nginx:    worker_processes 1, keepalive 64 to the mirror, proxy_max_temp_file_size 0, $NGINX_PROXY_BUFFERS"
echo "  wrk:      ${CLIENT_CPUS:+taskset -c $CLIENT_CPUS }wrk -t$THREADS -c$CONNECTIONS -d$DURATION -s benches/load/rotate-xff.lua URL -- ADDR PATH|@PATHS"
echo "  pinning:  $PINNING"
for c in "large:$L_RATIO" "small:$S_RATIO"; do
    if awk -v r="${c#*:}" -v t="$TARGET_RATIO" 'BEGIN {exit !(r >= t)}'; then
        echo "  verdict:  ${c%%:*}: mirrorgate reaches the target (median pair ratio ${c#*:} >= $TARGET_RATIO)"
    else
        echo "  verdict:  ${c%%:*}: mirrorgate is BELOW the target (median pair ratio ${c#*:} < $TARGET_RATIO)"
    fi
done
