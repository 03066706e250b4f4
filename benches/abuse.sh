#!/usr/bin/env bash
# Abuse checks, in one command:
#
#     bash benches/abuse.sh [CHECK ...]
#
# Builds the release binary (or takes MIRRORGATE_BIN) and runs
# benches/abuse.py against it: slow readers, a pipeline that is never read,
# slowloris on both listeners, descriptor exhaustion under a low `ulimit -n`,
# a mirror that redirects to an internal address, and list floods with 5,000
# mirrors. Each check starts its own fake mirrors and mirrorgate on 127.0.0.1
# and stops them; it prints what it measured and PASS or FAIL. The exit status
# is the number of failed checks. Needs only Python 3 besides the toolchain.
# It takes about two minutes after the build. CI does not run it (tests/
# holds a regression test for each of these); rerun it after changing the
# listeners, the proxy or the lists.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ -z ${MIRRORGATE_BIN:-} ]]; then
    cargo build --release --locked --bin mirrorgate
    MIRRORGATE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/mirrorgate
fi
exec python3 "$ROOT/benches/abuse.py" "$MIRRORGATE_BIN" "$@"
