# Parts of benches/proxy.sh that load.sh and scale.sh do not need, sourced
# after benches/load/common.sh (not run on its own): free ports, nginx
# configs, memory figures from /proc, and one measured wrk run of a proxy.
#
# The sourcing script sets NGINX_PROXY_BUFFERS (nginx directives) before
# calling nginx_conf, and before calling proxy_measure: RESULTS (the file
# it appends to) and RUN/THREADS/CONNECTIONS/DURATION as for common.sh, and
# $RUN/addr.txt (the address list rotate-xff.lua wants).
# shellcheck shell=bash

# free_port: a TCP port no socket uses at 127.0.0.1 now (and that this
# run has not handed out yet).
declare -A GIVEN_PORTS=()
free_port() {
    local p lo
    # Below the kernel's ephemeral range, where no outgoing connection (of a
    # run just ended, say) can hold the port; and held by no socket at all.
    lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((lo > 11000)) || lo=32768
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (lo - 10000)))
        [[ -z ${GIVEN_PORTS[$p]:-} ]] || continue
        if [[ -z $(ss -Htan "sport = :$p") ]]; then
            GIVEN_PORTS[$p]=1
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# nginx_conf NAME PORT SERVER_BODY [UPSTREAM_PORT]: a minimal nginx.conf
# (one worker, in the foreground, everything under $RUN/nginx-NAME) with one
# server on 127.0.0.1:PORT; with UPSTREAM_PORT, an upstream "mirror" with
# keep-alive connections, HTTP/1.1 and buffering in memory only.
nginx_conf() {
    local name=$1 port=$2 body=$3 upstream=${4:-}
    local prefix=$RUN/nginx-$name
    mkdir -p "$prefix/logs"
    # The workers must read the mirror's files in $RUN (mode 700): same user.
    if ((EUID == 0)); then echo "user root;"; fi
    cat <<EOF
worker_processes 1;
daemon off;
pid $prefix/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy_temp;
    fastcgi_temp_path $prefix/fastcgi_temp;
    uwsgi_temp_path $prefix/uwsgi_temp;
    scgi_temp_path $prefix/scgi_temp;
EOF
    if [[ -n $upstream ]]; then
        cat <<EOF
    upstream mirror {
        server 127.0.0.1:$upstream;
        keepalive 64;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_max_temp_file_size 0;
    $NGINX_PROXY_BUFFERS
EOF
    fi
    cat <<EOF
    server {
        listen 127.0.0.1:$port;
        $body
    }
}
EOF
}

# proc_kib PID FIELD: a "VmRSS"/"VmHWM" line of /proc/PID/status, in KiB.
proc_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
# reset_hwm PID: start VmHWM again from the current RSS.
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
# The one worker of the nginx whose master is PID.
nginx_worker() { pgrep -P "$1" | head -n 1; }

# proxy_run OUT URL DURATION PATH_ARG: one wrk run (rotate-xff.lua with one
# address, PATH_ARG a path or @PATHS_FILE), pinned to the client CPUs. The
# timeout is long: a 1 GiB download is never complete within one run.
proxy_run() {
    local out=$1 url=$2 dur=$3 path=$4
    local cmd=(wrk "-t$THREADS" "-c$CONNECTIONS" "-d$dur" --timeout 120s -s "$LUA" "$url" -- "$RUN/addr.txt" "$path")
    if [[ -n $CLIENT_CPUS ]]; then
        taskset -c "$CLIENT_CPUS" "${cmd[@]}" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    else
        "${cmd[@]}" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    fi
}

# to_bytes VALUE: wrk's "5.23GB" / "812.40MB" / "1.2KB" / "10B" in bytes.
to_bytes() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /TB$/) f = 2^40; else if (v ~ /GB$/) f = 2^30; else if (v ~ /MB$/) f = 2^20
        else if (v ~ /KB$/) f = 2^10; else f = 1
        printf "%.0f", n * f }'
}

# proxy_measure NAME CASE URL PATH_ARG PID ROUND: one measured run of
# $DURATION; PID is the process that does the proxying (its CPU time and
# peak RSS are read). Appends "NAME CASE ROUND req/s MiB/s CPU% peakRSS-KiB"
# to $RESULTS. Any non-2xx/3xx answer or socket error fails the run.
proxy_measure() {
    local name=$1 case=$2 url=$3 path=$4 pid=$5 round=$6
    local out=$RUN/wrk-$name-$case-$round.txt
    local before_cpu after_cpu
    reset_hwm "$pid"
    before_cpu=$(cpu_ticks "$pid")
    proxy_run "$out" "$url" "$DURATION" "$path"
    after_cpu=$(cpu_ticks "$pid")
    local hwm requests secs read non3xx errors
    hwm=$(proc_kib "$pid" VmHWM)
    read -r requests secs read < <(awk '/requests in/ {sub(/s,$/, "", $4); print $1, $4, $5}' "$out")
    non3xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    errors=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
    [[ -n $requests && -n $secs && -n $read ]] || die "cannot read wrk's output for $name: $(cat "$out")"
    ((${non3xx:-0} == 0)) || die "$name ($case): wrk saw ${non3xx} responses that were not 2xx/3xx"
    ((${errors:-0} == 0)) || die "$name ($case): wrk saw socket errors: $(grep 'Socket errors' "$out")"
    local bytes rps mibs cpu_pct
    bytes=$(to_bytes "$read")
    rps=$(awk -v n="$requests" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
    mibs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.1f", b / s / 1048576}')
    cpu_pct=$(awk -v t=$((after_cpu - before_cpu)) -v hz="$TICKS" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$case" "$round" "$rps" "$mibs" "$cpu_pct" "$hwm" >>"$RESULTS"
    printf '    round %s %-10s %-6s %9s req/s %9s MiB/s  server CPU %3s%%  peak RSS %6s KiB\n' \
        "$round" "$name" "$case" "$rps" "$mibs" "$cpu_pct" "$hwm"
}
