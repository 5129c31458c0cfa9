#!/usr/bin/env python3
"""Names the tests that started but never ended, from a swift-testing event stream.

Usage: unfinished_tests.py EVENTS.jsonl

scripts/test runs `swift test` with `--event-stream-output-path`; when the run is cut
off by its time limit, this tells which tests were still running (the hung ones and
whatever ran beside them), with how long each had been running.
"""
import json
import sys


def main(path: str) -> int:
    running = {}  # (test id, case id) -> (message, started at)
    last = 0.0
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError as error:
        print(f"unfinished tests: cannot read {path}: {error}")
        return 1
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the last line may be cut off
        if record.get("kind") != "event":
            continue
        event = record["payload"]
        kind = event.get("kind")
        at = event.get("instant", {}).get("absolute", 0.0)
        last = max(last, at)
        case = (event.get("_testCase") or {}).get("id")
        key = (event.get("testID"), case)
        if kind in ("testStarted", "testCaseStarted"):
            text = " ".join(m.get("text", "") for m in event.get("messages", []))
            running[key] = (text or str(key[0]), at)
        elif kind in ("testEnded", "testCaseEnded"):
            running.pop(key, None)
    if not running:
        print("unfinished tests: none")
        return 0
    print(f"unfinished tests: {len(running)} started and never ended:")
    for text, at in sorted(running.values(), key=lambda item: item[1]):
        print(f"  running for {last - at:7.1f} s at the last event: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else 2)
