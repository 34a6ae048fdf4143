"""The ``lazcancel`` command's answers to bad options, paths and readers, run as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import ORDERS, batch_keys, clean_env, fake_credentials, lazcancel

SHELL_SIGPIPE_STATUS = 141


def error_lines(stderr: str) -> list[str]:
    """The command's own error lines, without the log events around them."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def sandbox_batch() -> Iterator[tuple[dict[str, str], str]]:
    """The environment of a finished `run --sandbox`, and its batch id."""
    with tempfile.TemporaryDirectory(prefix="lzc-") as tmp:
        home = Path(tmp)
        orders = home / "orders.txt"
        orders.write_text("\n".join(ORDERS) + "\n", encoding="utf-8")
        env = clean_env(LAZCANCEL_HOME=str(home))
        run = lazcancel("run", str(orders), "--sandbox", "--yes", "--json", env=env, cwd=home)
        assert run.returncode == 0, run.stderr
        yield env, json.loads(run.stdout)["batch_id"]


@pytest.fixture
def rejected_only_csv(tmp_path: Path) -> Path:
    path = tmp_path / "rejected.csv"
    path.write_text("order_id\n2.82346E+14\nabc\n", encoding="utf-8")
    return path


@pytest.fixture
def half_rejected_csv(tmp_path: Path) -> Path:
    path = tmp_path / "half.csv"
    path.write_text(f"order_id\n{ORDERS[0]}\nabc\n{ORDERS[1]}\n", encoding="utf-8")
    return path


# -- results --output and readers that go away -------------------------------------------------


def test_output_to_a_directory_is_a_clear_error(
    sandbox_batch: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, batch_id = sandbox_batch
    target = tmp_path / "exports"
    target.mkdir()

    run = lazcancel(
        "results", batch_id, "--sandbox", "--output", str(target), env=env, cwd=tmp_path
    )

    assert run.returncode == 2
    assert error_lines(run.stderr) == [
        f"error: --output {target}: is a directory; name a file to write"
    ]
    assert run.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports"]


def test_output_that_cannot_be_opened_is_a_clear_error(
    sandbox_batch: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, batch_id = sandbox_batch
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    target = blocker / "results.csv"

    run = lazcancel(
        "results", batch_id, "--sandbox", "--output", str(target), env=env, cwd=tmp_path
    )

    assert run.returncode == 2
    assert f"error: --output {target}: cannot write it (" in run.stderr
    assert "Traceback" not in run.stderr


def test_results_into_a_closed_pipe_end_quietly_as_sigpipe_would(
    sandbox_batch: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, batch_id = sandbox_batch
    # A pipe whose reader is already gone: every write fails, as after `| head -1` exits.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "lazcancel", "--log-level", "error", "results", batch_id,
             "--sandbox"],
            env=env,
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)

    assert run.returncode == SHELL_SIGPIPE_STATUS
    assert run.stderr == ""


# -- LAZCANCEL_HOME -----------------------------------------------------------------------------


def test_lazcancel_home_that_is_a_file_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home-file"
    home.write_text("", encoding="utf-8")
    orders = tmp_path / "orders.txt"
    orders.write_text(ORDERS[0] + "\n", encoding="utf-8")
    env = clean_env(LAZCANCEL_HOME=str(home))

    for command in (
        ("run", str(orders), "--sandbox", "--yes"),
        ("status", "20200101-000000-abcdef"),
        ("status", "20200101-000000-abcdef", "--sandbox"),
    ):
        run = lazcancel(*command, env=env, cwd=tmp_path)
        assert run.returncode == 2, command
        [error] = error_lines(run.stderr)
        assert error.startswith(f"error: LAZCANCEL_HOME={home}: cannot use "), command
        assert f"({home} is a file, not a directory)" in error
        assert "Traceback" not in run.stderr
    assert home.read_text(encoding="utf-8") == ""


# -- option values ------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "-1", "80x"])
def test_sandbox_port_out_of_range_is_a_usage_error(port: str, tmp_path: Path) -> None:
    run = lazcancel("sandbox", "--port", port, env=clean_env(), cwd=tmp_path, timeout=20)

    assert run.returncode == 2
    assert run.stderr.startswith("usage: lazcancel sandbox")
    assert "argument --port: " in run.stderr
    assert "port must be 0-65535" in run.stderr or "not a port number" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "option", [("--reason", ""), ("--reason", "  "), ("--sku", ""), ("--sku", " \t")]
)
def test_blank_reason_or_sku_is_a_usage_error_and_nothing_is_enqueued(
    option: tuple[str, str], redis_url: str, tmp_path: Path
) -> None:
    orders = tmp_path / "orders.txt"
    orders.write_text(ORDERS[0] + "\n", encoding="utf-8")
    env = fake_credentials(REDIS_URL=redis_url)

    run = lazcancel("run", str(orders), "--yes", *option, env=env, cwd=tmp_path)

    assert run.returncode == 2
    assert f"argument {option[0]}: must not be blank" in run.stderr
    assert batch_keys(redis_url) == []


# -- rejected rows ------------------------------------------------------------------------------


def test_skip_invalid_with_no_valid_row_enqueues_nothing(
    redis_url: str, rejected_only_csv: Path
) -> None:
    env = fake_credentials(REDIS_URL=redis_url)
    run = lazcancel(
        "run",
        str(rejected_only_csv),
        "--yes",
        "--skip-invalid",
        env=env,
        cwd=rejected_only_csv.parent,
    )

    assert run.returncode == 2
    assert f"error: {rejected_only_csv}: no valid rows; nothing was enqueued" in run.stderr
    assert f"{rejected_only_csv}:3:" in run.stderr and "'abc'" in run.stderr
    assert run.stdout == ""
    assert batch_keys(redis_url) == []


def test_sandbox_orders_lists_rejected_rows_and_serves_the_valid_ones(
    half_rejected_csv: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lazcancel", "--log-level", "error", "sandbox", "--port", "0",
         "--orders", str(half_rejected_csv)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    printed = [proc.stdout.readline() for _ in range(5)]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 0, err
    assert printed[0].startswith("# Lazada sandbox at http://127.0.0.1:")
    assert ": 2 orders" in printed[0]
    assert printed[-1].startswith("export LAZADA_ACCESS_TOKEN=")
    assert f"warning: 1 row(s) of {half_rejected_csv} rejected" in err
    assert f"  {half_rejected_csv}:3: " in err and "'abc'" in err


def test_sandbox_orders_with_no_valid_row_is_refused(
    rejected_only_csv: Path, tmp_path: Path
) -> None:
    run = lazcancel(
        "sandbox", "--port", "0", "--orders", str(rejected_only_csv),
        env=clean_env(), cwd=tmp_path, timeout=20,
    )  # fmt: skip

    assert run.returncode == 2
    assert f"--orders {rejected_only_csv}: no valid rows" in run.stderr
    assert run.stdout == ""


# -- a reason no order offers -------------------------------------------------------------------


def test_a_reason_no_order_offers_is_flagged_after_the_summary(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="lzc-") as home:
        orders = tmp_path / "orders.txt"
        orders.write_text("\n".join(ORDERS[:2]) + "\n", encoding="utf-8")
        env = clean_env(LAZCANCEL_HOME=home)
        typo = lazcancel(
            "run", str(orders), "--sandbox", "--yes", "--reason", "Out of Stok", "--json",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        right = lazcancel(
            "run", str(orders), "--sandbox", "--yes", "--reason", "out of stock", "--json",
            env=env, cwd=tmp_path,
        )  # fmt: skip

    assert typo.returncode == 0, typo.stderr
    summary = json.loads(typo.stdout)
    assert summary["skipped_by_code"] == {"reason_not_offered": summary["items"]}
    warnings = [line for line in typo.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: none of the orders offered the cancel reason 'Out of Stok'; check --reason "
        f"(the messages in `lazcancel results {summary['batch_id']} --sandbox` list the reasons "
        "each order offered)"
    ]
    assert right.returncode == 0 and json.loads(right.stdout)["cancelled"] > 0
    assert "warning:" not in right.stderr
