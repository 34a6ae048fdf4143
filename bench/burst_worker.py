"""One burst worker process: drain the lazcancel queue and exit, configured by the environment.

``lazcancel worker --burst`` with one more knob, ``--max-jobs``: the two-process scale test runs
two of these with one chunk each, so that both work at once against one limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from lazcancel.log import configure_logging
from lazcancel.settings import load_settings
from worker.settings import build_worker


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-jobs", type=int, default=4, help="chunks run at once")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


async def drain(max_jobs: int) -> None:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit("REDIS_URL must name the Redis that holds the queue")
    worker = build_worker(
        load_settings(),
        redis_url=redis_url,
        burst=True,
        handle_signals=False,
        max_jobs=max_jobs,
    )
    try:
        await worker.main()
    finally:
        await worker.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(level=args.log_level, json=True)
    asyncio.run(drain(args.max_jobs))


if __name__ == "__main__":
    main()
