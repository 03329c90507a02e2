"""What the peer scripts share with `bench`: the row checksum, peak RSS, the JSON report line.

Rows are E1 (user_id, window_start, count, sum of prices in cents) and E2 (session_id, start, count,
duration_ms). The checksum is the one `bench` prints: the wrapping (mod 2^64) sum of each row's FNV-1a
hash over its canonical text `key,start,count,value` (E1's sum with two decimals).
"""

import json
import os
import threading
import time

MASK = (1 << 64) - 1
WINDOW_MS = 5 * 60_000
GAP_MS = 30 * 60_000
GRACE_MS = 5_000


def canonical(workload, key, start, count, value):
    if workload == "e1":
        return f"{key},{start},{count},{value // 100}.{value % 100:02d}"
    return f"{key},{start},{count},{value}"


def fnv1a(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


class Checksum:
    def __init__(self):
        self.rows = 0
        self.sum = 0

    def add(self, workload, key, start, count, value):
        self.rows += 1
        self.sum = (self.sum + fnv1a(canonical(workload, key, start, count, value))) & MASK

    def hex(self):
        return f"{self.sum:016x}"


def cents(price):
    """Prices are two-decimal amounts, summed as integer cents (as `bench` does: round half away from 0)."""
    c = abs(price) * 100.0
    whole = int(c)
    if c - whole >= 0.5:
        whole += 1
    return whole if price >= 0 else -whole


class TreeRss:
    """Peak resident set size of this process and all its descendants (the JVM of PyFlink included),
    sampled every 100 ms from /proc."""

    def __init__(self):
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _children():
        kids = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(pid))
        return kids

    def _sample(self):
        kids = self._children()
        todo, total = [os.getpid()], 0
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
            todo.extend(kids.get(pid, []))
        self.peak_kb = max(self.peak_kb, total)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.1)

    def stop_mb(self):
        self._stop.set()
        self._thread.join()
        return round(self.peak_kb / 1024, 1)


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def report(workload, events, wall_s, rss_mb, checksum, late=None):
    print(json.dumps({
        "workload": workload,
        "events": events,
        "wall_s": round(wall_s, 3),
        "events_per_s": round(events / wall_s),
        "peak_rss_mb": rss_mb,
        "output_rows": checksum.rows,
        "checksum": checksum.hex(),
        "late": late,
    }), flush=True)


def timer():
    return time.perf_counter()
