"""``lazcancel sweep`` and the preview gate of ``lazcancel run``, as real processes talking to a
sandbox in this test's event loop and to a real Redis."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lazada_sandbox import SandboxServer
from tests.flow_helpers import APP_KEY, APP_SECRET, TOKEN, creates, item, order, scenario

ROOT = Path(__file__).resolve().parent.parent


def aged(order_id: str, item_id: str, sku: str) -> dict[str, Any]:
    return order(order_id, item(item_id, sku=sku), created_at=time.time() - 3 * 3600)


def write_config(path: Path, sb: SandboxServer, extra: str = "", *, top: str = "") -> Path:
    """A config for the sandbox; ``top`` holds top-level keys, ``extra`` tables."""
    path.write_text(
        f"""
{top}

[app]
key = "{APP_KEY}"
secret = "{APP_SECRET}"

[sellers.default]
api_url = "{sb.url}"
access_token = "{TOKEN}"

[retry]
backoff_base = 0.01
backoff_cap = 0.05
confirm_delay = 0.02

{extra}
""",
        encoding="utf-8",
    )
    return path


def env_for(config: Path, redis_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAZADA_", "LAZCANCEL_"))}
    env.update(LAZCANCEL_CONFIG=str(config), REDIS_URL=redis_url, LAZCANCEL_HOME=str(home))
    return env


async def lazcancel(
    *args: str, env: dict[str, str], stdin: int | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lazcancel",
        *args,
        env=env,
        cwd=ROOT,
        stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


SWEEP_RULES = """
[[sweeps]]
name = "oos"
skus = ["GONE"]
min_age_hours = 1
"""


async def test_sweep_once_runs_the_rules_and_prints_their_batches(
    make_sandbox: Any, redis_url: str, tmp_path: Path
) -> None:
    sb = await make_sandbox(
        scenario(
            aged("100000000000001", "200000000000001", "GONE"),
            aged("100000000000002", "200000000000002", "KEEP"),
        )
    )
    env = env_for(write_config(tmp_path / "c.toml", sb, SWEEP_RULES), redis_url, tmp_path)

    code, dry_out, _ = await lazcancel("sweep", "--once", "--dry-run", env=env)
    assert code == 0
    assert creates(sb) == []
    code, out, err = await lazcancel("sweep", "--once", env=env)

    assert code == 0, err
    [line] = out.splitlines()
    batch_id, state, counts = line.split("\t")
    assert batch_id.startswith("sweep-oos-") and state == "done"
    assert "items=1" in counts and "cancelled=1" in counts
    assert dry_out.startswith(batch_id + "-dry\tdone") and "would_cancel=1" in dry_out
    assert sb.item("200000000000001")["status"] == "canceled"
    assert sb.item("200000000000002")["status"] == "pending"
    code, results, _ = await lazcancel("results", batch_id, "--format", "jsonl", env=env)
    assert code == 0 and '"outcome": "cancelled"' in results.replace('":"', '": "')


async def test_sweep_needs_rules_and_dry_run_needs_once(
    make_sandbox: Any, redis_url: str, tmp_path: Path
) -> None:
    sb = await make_sandbox(scenario())
    bare = env_for(write_config(tmp_path / "bare.toml", sb), redis_url, tmp_path)
    code, _, err = await lazcancel("sweep", "--once", env=bare)
    assert code == 2 and "no sweep rules" in err

    ruled = env_for(write_config(tmp_path / "r.toml", sb, SWEEP_RULES), redis_url, tmp_path)
    code, _, err = await lazcancel("sweep", "--dry-run", env=ruled)
    assert code == 2 and "--dry-run needs --once" in err
    assert sb.ledger == []


async def run_on_terminal(args: Sequence[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``lazcancel`` with a terminal on stdin (it asks for confirmation on one); answers no."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, b"n\n")
        return await lazcancel(*args, env=env, stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)


async def test_run_refuses_a_batch_over_the_threshold_with_its_preview(
    make_sandbox: Any, redis_url: str, tmp_path: Path
) -> None:
    sb = await make_sandbox(
        scenario(
            order("100000000000001", item("200000000000001", sku="RED")),
            order("100000000000002", item("200000000000002", sku="BLUE")),
            order("100000000000003", item("200000000000003", "shipped", sku="RED")),
        )
    )
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id\n100000000000001\n100000000000002\n100000000000003\n")
    config = write_config(tmp_path / "c.toml", sb, top="confirm_threshold = 1")
    env = env_for(config, redis_url, tmp_path)

    code, out, err = await run_on_terminal(["run", str(orders)], env)

    assert code == 2, err
    assert "2 item(s) in 2 order(s) would be cancelled" in err
    assert "set the stock of these SKUs to 0: BLUE, RED" in err
    assert "status_not_cancellable 1" in err and "--yes" in err
    assert out == ""
    assert creates(sb) == []

    code, out, err = await lazcancel("run", str(orders), "--yes", env=env)
    assert code == 0, err
    assert len(creates(sb)) == 2
