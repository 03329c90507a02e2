"""Prints the peers table from the JSON lines of run.sh: per workload and input, ours first, then each
peer with its rate relative to ours and whether its rows equal ours (same count and checksum)."""

import json
import sys


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    print("| workload | events | implementation | events/s | ours ÷ it | peak RSS MB | output rows | same rows as ours |")
    print("|---|---|---|---|---|---|---|---|")
    ours = None
    for r in runs:
        name = r["workload"]
        if name in ("e1", "e2"):
            ours = r
            impl, ratio, same = "topology (embedded, sled, changelogs)", "1.00", "-"
        else:
            impl = "Bytewax, 1 worker"
            if name.startswith("pyflink"):
                impl = f"PyFlink, parallelism {name.rsplit('-p', 1)[1]}"
            ratio = f"{ours['events_per_s'] / r['events_per_s']:.2f}"
            same = "yes" if (r["output_rows"], r["checksum"]) == (ours["output_rows"], ours["checksum"]) else "no"
        print(
            f"| {ours['workload']} | {r['events']:,} | {impl} | {round(r['events_per_s']):,} | {ratio} | "
            f"{r['peak_rss_mb']} | {r['output_rows']} | {same} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
