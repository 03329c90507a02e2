"""E1/E2 in Bytewax (one worker), over the same JSON Lines file as `bench`.

    python bytewax_e.py e1|e2 FILE

Event-time windows from `ts` with the EventClock waiting 5 s for late data (the engine's grace).
Bytewax's watermark also moves on with system time, so it may close windows a little earlier than the
engine on a fast replay. E1: 5-minute tumbling windows per user_id, count and sum(price) in cents;
E2: 30-minute-gap session windows per session_id, count and max(ts) - min(ts). Prints the JSON line
`bench` prints.
"""

import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["e1", "e2"])
    ap.add_argument("input")
    args = ap.parse_args()

    rss = common.TreeRss()
    started = common.timer()
    import bytewax.operators as op
    from bytewax.connectors.files import FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators import windowing as win
    from bytewax.operators.windowing import EventClock, SessionWindower, TumblingWindower
    from bytewax.testing import run_main

    checksum = common.Checksum()
    late = [0]
    workload = args.workload

    def parse(line):
        try:
            e = json.loads(line)
            return [(e["ts"], e["user_id"], e["session_id"], e["price"])]
        except (ValueError, KeyError):
            return []

    flow = Dataflow(f"bytewax-{workload}")
    lines = op.input("in", flow, FileSource(args.input))
    events = op.flat_map("parse", lines, parse)
    clock = EventClock(
        lambda e: EPOCH + timedelta(milliseconds=e[0]), wait_for_system_duration=timedelta(seconds=5)
    )
    if workload == "e1":
        keyed = op.key_on("by-user", events, lambda e: e[1])
        windower = TumblingWindower(length=timedelta(milliseconds=common.WINDOW_MS), align_to=EPOCH)

        def add(acc, e):
            start = e[0] - e[0] % common.WINDOW_MS
            return (start, acc[1] + 1, acc[2] + common.cents(e[3]))

        out = win.fold_window("e1", keyed, clock, windower, lambda: (0, 0, 0), add, None)
    else:
        keyed = op.key_on("by-session", events, lambda e: e[2])
        windower = SessionWindower(gap=timedelta(milliseconds=common.GAP_MS))

        def add(acc, e):
            lo, hi, n = acc
            return (min(lo, e[0]), max(hi, e[0]), n + 1)

        def merge(a, b):
            return (min(a[0], b[0]), max(a[1], b[1]), a[2] + b[2])

        out = win.fold_window("e2", keyed, clock, windower, lambda: (2**62, -(2**62), 0), add, merge)

    def emit(item):
        key, (_window_id, acc) = item
        if workload == "e1":
            checksum.add(workload, key, acc[0], acc[1], acc[2])
        else:
            checksum.add(workload, key, acc[0], acc[2], acc[1] - acc[0])

    def count_late(_item):
        late[0] += 1

    op.inspect("rows", out.down, lambda _step, item: emit(item))
    op.inspect("late", out.late, lambda _step, item: count_late(item))
    run_main(flow)
    wall = common.timer() - started
    events_n = common.count_lines(args.input)
    common.report(f"bytewax-{workload}", events_n, wall, rss.stop_mb(), checksum, late[0])


if __name__ == "__main__":
    main()
