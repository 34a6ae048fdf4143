"""The sandbox in a process of its own, so that benchmarks do not share its CPU with the driver.

Serves one scenario file on 127.0.0.1 until SIGTERM; control and ledger go over ``/_sandbox/``.
"""

from __future__ import annotations

import argparse

from lazada_sandbox import Scenario, serve
from lazcancel.log import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", required=True, help="scenario JSON file")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Per-call debug events would cost the sandbox more CPU than the calls themselves.
    configure_logging(level="warning", json=True)
    serve(Scenario.from_file(args.scenario), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
