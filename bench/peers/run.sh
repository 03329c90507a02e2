#!/usr/bin/env bash
# E1 and E2 on this engine, PyFlink (local mini-cluster, parallelism 1 and 2) and Bytewax, over the same
# generated files, one process per run; then a table of rates, ratios to ours, peak RSS, row counts
# and whether each peer's rows equal ours (same checksum). Not run by CI (it downloads ~400 MB).
#
#   bash bench/peers/run.sh [EVENTS ...]        # default: 1000000
#
# Needs java (17 here) for PyFlink and python3 with venv; installs apache-flink 1.20.1 and bytewax
# 0.21.1 into bench/peers/.venv (or $PEERS_VENV) once. Data: ../shared/bench/gen_events.py (or
# $GEN_EVENTS), seed 42, cached as /tmp/peers-events-N.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${PEERS_VENV:-bench/peers/.venv}"
gen="${GEN_EVENTS:-../shared/bench/gen_events.py}"
command -v java >/dev/null || { echo "PyFlink needs java on PATH" >&2; exit 1; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q "apache-flink==1.20.1" "bytewax==0.21.1"
cargo build --release -q -p bench
results="$(mktemp)"
for n in "${@:-1000000}"; do
  input="/tmp/peers-events-$n.jsonl"
  [ -s "$input" ] || python3 "$gen" --n "$n" --seed 42 --out "$input"
  for w in e1 e2; do
    echo "== $w, $n events" >&2
    target/release/bench "$w" --input "$input" | tail -n 1 >>"$results"
    for p in 1 2; do
      "$venv/bin/python" bench/peers/pyflink_e.py "$w" "$input" --parallelism "$p" 2>/dev/null | tail -n 1 >>"$results"
    done
    "$venv/bin/python" bench/peers/bytewax_e.py "$w" "$input" | tail -n 1 >>"$results"
  done
done
python3 bench/peers/table.py "$results"
