"""The sandbox in a process of its own, so that benchmarks do not share its CPU with the driver.

Serves one scenario file on 127.0.0.1 until SIGTERM; control and ledger go over ``/_sandbox/``.
Its cyclic garbage collector is off: a collection over the store and the ledger pauses the
process for up to 50 ms, and calls that wait out the pause are stamped late and then in a
cluster, so its rate limiter would count a second that the client never sent (the benchmark
measures the client's pacing, not the imitation's pauses). Memory stays bounded by the runs.
"""

from __future__ import annotations

import argparse
import gc

from lazada_sandbox import Scenario, serve
from lazcancel.log import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", required=True, help="scenario JSON file")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Per-call debug events would cost the sandbox more CPU than the calls themselves.
    configure_logging(level="warning", json=True)
    scenario = Scenario.from_file(args.scenario)
    gc.collect()
    gc.freeze()
    gc.disable()
    serve(scenario, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
