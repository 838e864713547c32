"""The fault test at full size (issue 7): 10,000 messages from 500 contacts through 2 web and
2 worker processes on PostgreSQL, workers SIGKILLed and restarted every few seconds, 10 % of
bodies delivered twice, some out of order, the bot down for a stretch, Graph failing at random.

Reports lost, duplicated and out-of-order replies (all must be 0) and the time to drain, as a
table and as JSON. What each count means, and what "in order" means: tests/fault_harness.py.
CI runs a reduced size through tests/test_fault.py.

Usage (PostgreSQL must be reachable; a fresh schema is made and dropped):
  TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    nice .venv/bin/python bench/fault_test.py [--messages 10000] [--contacts 500] [--json out.json]
Exit status 0 when every count is 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fault_harness import FaultConfig, run_fault_test


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--graph-error-rate", type=float, default=0.10)
    parser.add_argument("--bot-down-after", type=float, default=5.0)
    parser.add_argument("--bot-down-seconds", type=float, default=10.0)
    parser.add_argument("--kill-min", type=float, default=2.0, help="seconds between kills, min")
    parser.add_argument("--kill-max", type=float, default=5.0, help="seconds between kills, max")
    parser.add_argument("--kill-web-every", type=int, default=4, help="0: kill workers only")
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--logs", type=Path, default=None, help="folder for the processes' logs")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    config = FaultConfig(
        messages=args.messages,
        contacts=args.contacts,
        graph_error_rate=args.graph_error_rate,
        bot_down_after=args.bot_down_after,
        bot_down_seconds=args.bot_down_seconds,
        kill_every=(args.kill_min, args.kill_max),
        kill_web_every=args.kill_web_every,
        worker_threads=args.worker_threads,
        seed=args.seed,
        log_level=args.log_level,
    )
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    report = run_fault_test(args.database_url, config, args.logs)
    print(report.table())
    print(report.as_json())
    if args.json:
        args.json.write_text(report.as_json() + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
