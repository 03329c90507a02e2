"""E1/E2 in PyFlink (Table API / SQL on a local mini-cluster), over the same JSON Lines file as `bench`.

    python pyflink_e.py e1|e2 FILE [--parallelism N]

Event time from `ts` with a 5 s bounded-out-of-orderness watermark: a window fires once the watermark
passes its end, i.e. when the highest `ts` seen is 5 s past it — the engine's grace rule. (Flink emits
watermarks every 200 ms of processing time, so it may accept a little more late data than the engine.)
E1: 5-minute tumbling windows per user_id, count and sum(price) in cents; E2: 30-minute-gap session
windows per session_id, count and max(ts) - min(ts). Prints the JSON line `bench` prints; wall time
includes starting the mini-cluster.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["e1", "e2"])
    ap.add_argument("input")
    ap.add_argument("--parallelism", type=int, default=1)
    args = ap.parse_args()

    rss = common.TreeRss()
    started = common.timer()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", str(args.parallelism))
    config.set("table.local-time-zone", "UTC")
    config.set("taskmanager.memory.process.size", "1536m")
    path = os.path.abspath(args.input)
    env.execute_sql(f"""
        CREATE TABLE events (
            user_id STRING,
            session_id STRING,
            price DOUBLE,
            ts BIGINT,
            rt AS TO_TIMESTAMP_LTZ(ts, 3),
            WATERMARK FOR rt AS rt - INTERVAL '5' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json',
                'json.ignore-parse-errors' = 'true')
    """)
    if args.workload == "e1":
        query = f"""
            SELECT user_id, MIN(ts - MOD(ts, {common.WINDOW_MS})), COUNT(*),
                   SUM(CAST(ROUND(price * 100, 0) AS BIGINT))
            FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(rt), INTERVAL '5' MINUTES))
            GROUP BY user_id, window_start, window_end
        """
    else:
        query = """
            SELECT session_id, MIN(ts), COUNT(*), MAX(ts) - MIN(ts)
            FROM TABLE(SESSION(TABLE events PARTITION BY session_id, DESCRIPTOR(rt), INTERVAL '30' MINUTES))
            GROUP BY session_id, window_start, window_end
        """
    checksum = common.Checksum()
    with env.execute_sql(query).collect() as rows:
        for key, start, count, value in rows:
            checksum.add(args.workload, key, int(start), int(count), int(value))
    wall = common.timer() - started
    events = common.count_lines(args.input)
    common.report(f"pyflink-{args.workload}-p{args.parallelism}", events, wall, rss.stop_mb(), checksum)


if __name__ == "__main__":
    main()
