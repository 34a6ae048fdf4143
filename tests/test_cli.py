"""The ``lazcancel`` command run as a real process, against the sandbox and a real Redis."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from lazada_sandbox import Scenario
from lazcancel.embedded_redis import RedisServer, free_port
from lazcancel.report import RESULT_FIELDS

ORDERS = ["1381129206325020", "1381129206325021", "282346141643186", "662834005291234"]
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LAZADA_", "LAZCANCEL_", "REDIS_URL"))
    }
    env.update(extra)
    return env


def lazcancel(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lazcancel", *args],
        env=dict(env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def home() -> Iterator[Path]:
    # Short on purpose: the embedded Redis listens on a unix socket under it.
    with tempfile.TemporaryDirectory(prefix="lzc-") as tmp:
        yield Path(tmp)


@pytest.fixture
def orders_csv(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    lines = ["Order Number,Order Item Id", *(f"{o}," for o in ORDERS), f"{ORDERS[0]},"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(f"order_id\n{ORDERS[0]}\n2.82346E+14\n{ORDERS[1]}\n", encoding="utf-8")
    return path


def fake_credentials(**extra: str) -> dict[str, str]:
    """Credentials aimed at a closed loopback port: nothing may be called with them."""
    return clean_env(
        LAZADA_API_URL=f"http://127.0.0.1:{free_port()}/rest",
        LAZADA_APP_KEY="100001",
        LAZADA_APP_SECRET="not-a-real-secret",
        LAZADA_ACCESS_TOKEN="not-a-real-token",
        **extra,
    )


def batch_keys(url: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(client.scan_iter("lazcancel:*"))
    finally:
        client.close()


# -- run --sandbox and reading its results ------------------------------------------------------


def test_run_sandbox_prints_batch_id_then_summary_and_results_read_back(
    home: Path, orders_csv: Path
) -> None:
    env = clean_env(LAZCANCEL_HOME=str(home))
    run = lazcancel("run", str(orders_csv), "--sandbox", "--yes", env=env, cwd=orders_csv.parent)

    assert run.returncode == 0, run.stderr
    first, *rest = run.stdout.splitlines()
    batch_id = first.removeprefix("batch_id: ")
    assert first.startswith("batch_id: ") and re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", batch_id)
    summary = "\n".join(rest)
    assert "state: done" in summary
    assert "orders: 4   duplicates merged: 1   rows rejected: 0" in summary
    assert "Traceback" not in run.stderr
    # The embedded redis-server it started is stopped again.
    assert not RedisServer(data_dir=home / "sandbox" / "redis").answering()

    as_csv = lazcancel("results", batch_id, "--sandbox", env=env, cwd=home)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout, newline="")))
    assert list(rows[0]) == list(RESULT_FIELDS)
    assert {r["order_id"] for r in rows} == {"\t" + o for o in ORDERS}
    assert all(r["order_item_id"].startswith("\t") for r in rows if r["order_item_id"])
    assert {r["order_id"].strip() for r in rows} == set(ORDERS)
    assert {(r["batch_id"], r["seller"]) for r in rows} == {(batch_id, "default")}

    as_json = lazcancel("results", batch_id, "--sandbox", "--format", "json", env=env, cwd=home)
    records = json.loads(as_json.stdout)
    assert [list(r) for r in records] == [list(RESULT_FIELDS)] * len(records)
    assert all(ISO_UTC.fullmatch(r["updated_at"]) for r in records)
    assert all(isinstance(r["order_id"], str) for r in records)

    out = home / "results.jsonl"
    as_jsonl = lazcancel(
        "results", batch_id, "--sandbox", "--format", "jsonl", "--output", str(out),
        env=env, cwd=home,
    )  # fmt: skip
    assert as_jsonl.returncode == 0 and as_jsonl.stdout == ""
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    key = ("order_id", "order_item_id", "outcome", "code")
    assert sorted(tuple(r[k] for k in key) for r in lines) == sorted(
        tuple(r[k] for k in key) for r in records
    )
    assert len(rows) == len(records) == len(lines)

    status = lazcancel("status", batch_id, "--sandbox", "--json", env=env, cwd=home)
    counts = json.loads(status.stdout)
    assert counts["state"] == "done" and counts["items"] == len(records)
    watch = lazcancel("status", batch_id, "--sandbox", "--watch", env=env, cwd=home)
    assert watch.stdout.startswith("state=done orders_done=4/4 ")


def test_run_json_prints_one_object_and_dry_run_cancels_nothing(
    home: Path, orders_csv: Path
) -> None:
    env = clean_env(LAZCANCEL_HOME=str(home))
    run = lazcancel("run", str(orders_csv), "--sandbox", "--dry-run", "--json", env=env, cwd=home)

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert run.stdout.count("\n") == 1
    assert summary["orders"] == 4 and summary["duplicates"] == 1
    assert summary["cancelled"] == 0 and summary["would_cancel"] > 0
    assert summary["dry_run"] is True and summary["state"] == "done"
    assert summary["items"] == sum(summary[o] for o in ("would_cancel", "skipped", "failed"))


def test_stdin_is_read_and_seeds_the_sandbox(home: Path) -> None:
    env = clean_env(LAZCANCEL_HOME=str(home))
    run = lazcancel(
        "run", "-", "--sandbox", "--yes", "--json", env=env, cwd=home, stdin="\n".join(ORDERS)
    )

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["source"] == "<stdin>" and summary["orders"] == 4
    assert summary["skipped_by_code"].get("order_not_found", 0) == 0


# -- bad input, nothing enqueued ----------------------------------------------------------------


def test_rejected_rows_exit_2_with_lines_and_nothing_enqueued(
    redis_url: str, bad_csv: Path
) -> None:
    env = fake_credentials(REDIS_URL=redis_url)
    run = lazcancel("run", str(bad_csv), "--yes", env=env, cwd=bad_csv.parent)

    assert run.returncode == 2
    assert run.stdout == ""
    assert f"{bad_csv}:3:" in run.stderr and "'2.82346E+14'" in run.stderr
    assert "scientific notation" in run.stderr and "--skip-invalid" in run.stderr
    assert "Traceback" not in run.stderr
    assert batch_keys(redis_url) == []


def test_skip_invalid_enqueues_valid_rows_and_lists_the_rejected(home: Path, bad_csv: Path) -> None:
    env = clean_env(LAZCANCEL_HOME=str(home))
    run = lazcancel(
        "run", str(bad_csv), "--sandbox", "--yes", "--skip-invalid", "--json", env=env, cwd=home
    )

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["rows_rejected"] == 1 and summary["orders"] == 2
    assert f"{bad_csv}:3:" in run.stderr and "2.82346E+14" in run.stderr


def test_cancelling_without_yes_off_a_terminal_is_refused(redis_url: str, orders_csv: Path) -> None:
    run = lazcancel(
        "run", str(orders_csv), env=fake_credentials(REDIS_URL=redis_url), cwd=orders_csv.parent
    )

    assert run.returncode == 2
    assert "--yes" in run.stderr and "--dry-run" in run.stderr
    assert batch_keys(redis_url) == []


def test_missing_credentials_name_the_variable(home: Path, orders_csv: Path) -> None:
    run = lazcancel(
        "run", str(orders_csv), "--yes", env=clean_env(LAZCANCEL_HOME=str(home)), cwd=home
    )

    assert run.returncode == 2
    assert "LAZADA_ACCESS_TOKEN" in run.stderr
    assert "Traceback" not in run.stderr


def test_unreachable_redis_url_is_named_without_its_password(orders_csv: Path) -> None:
    port = free_port()
    env = fake_credentials(REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    run = lazcancel("run", str(orders_csv), "--yes", env=env, cwd=orders_csv.parent)

    assert run.returncode == 2
    assert f"redis://:***@127.0.0.1:{port}/0" in run.stderr
    assert "hunter2" not in run.stderr and "Traceback" not in run.stderr


def test_unknown_batch_id_is_a_clear_error(redis_url: str, tmp_path: Path) -> None:
    env = clean_env(REDIS_URL=redis_url)
    for command in ("status", "results", "abort"):
        run = lazcancel(command, "20200101-000000-abcdef", env=env, cwd=tmp_path)
        assert run.returncode == 2, command
        assert "unknown batch '20200101-000000-abcdef'" in run.stderr
        assert run.stdout == ""


# -- enqueue, worker, status, abort against `lazcancel sandbox` ---------------------------------


@pytest.fixture
def sandbox_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A `lazcancel sandbox` process seeded with ORDERS, and the variables it printed."""
    scenario_path = tmp_path / "scenario.json"
    Scenario.generate(order_ids=ORDERS, seed=3).save(scenario_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lazcancel", "sandbox", "--port", "0",
         "--scenario", str(scenario_path)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    printed: dict[str, str] = {}
    while len(printed) < 4:
        line = proc.stdout.readline()
        assert line, "lazcancel sandbox exited before printing its credentials"
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            printed[name] = value
    assert printed["LAZADA_API_URL"].startswith("http://127.0.0.1:")
    yield printed
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()


def test_enqueue_then_worker_burst_processes_the_batch(
    redis_url: str, sandbox_env: dict[str, str], orders_csv: Path
) -> None:
    env = clean_env(REDIS_URL=redis_url, **sandbox_env)
    enqueue = lazcancel("enqueue", str(orders_csv), "--yes", env=env, cwd=orders_csv.parent)
    assert enqueue.returncode == 0, enqueue.stderr
    batch_id = enqueue.stdout.splitlines()[-1]

    queued = json.loads(
        lazcancel("status", batch_id, "--json", env=env, cwd=orders_csv.parent).stdout
    )
    assert queued["state"] == "queued" and queued["orders"] == 4 and queued["items"] == 0

    worker = lazcancel("worker", "--burst", env=env, cwd=orders_csv.parent)
    assert worker.returncode == 0, worker.stderr
    assert '"event": "worker_stopped"' in worker.stderr

    done = json.loads(
        lazcancel("status", batch_id, "--json", env=env, cwd=orders_csv.parent).stdout
    )
    assert done["state"] == "done" and done["orders_done"] == 4
    assert done["cancelled"] + done["skipped"] == done["items"] > 0 and done["failed"] == 0
    text = lazcancel("status", batch_id, env=env, cwd=orders_csv.parent).stdout
    assert text.startswith(f"batch_id: {batch_id}\n") and "state: done" in text


def test_abort_of_a_queued_batch_records_every_order_as_aborted(
    redis_url: str, sandbox_env: dict[str, str], orders_csv: Path
) -> None:
    env = clean_env(REDIS_URL=redis_url, **sandbox_env)
    batch_id = lazcancel(
        "enqueue", str(orders_csv), "--yes", env=env, cwd=orders_csv.parent
    ).stdout.splitlines()[-1]

    abort = lazcancel("abort", batch_id, env=env, cwd=orders_csv.parent)
    assert abort.returncode == 0 and "aborting" in abort.stdout
    assert lazcancel("worker", "--burst", env=env, cwd=orders_csv.parent).returncode == 0

    status = json.loads(
        lazcancel("status", batch_id, "--json", env=env, cwd=orders_csv.parent).stdout
    )
    assert status["state"] == "aborted"
    assert status["skipped_by_code"] == {"aborted": 4} and status["cancelled"] == 0
    again = lazcancel("abort", batch_id, env=env, cwd=orders_csv.parent)
    assert again.returncode == 0 and "already aborted" in again.stdout


def test_sandbox_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    run = lazcancel("sandbox", "--host", "0.0.0.0", env=clean_env(), cwd=tmp_path, timeout=20)

    assert run.returncode == 2
    assert "not a loopback address" in run.stderr and "--allow-non-loopback" in run.stderr


# -- interrupting a run -------------------------------------------------------------------------


def many_orders(path: Path, count: int = 400) -> Path:
    path.write_text(
        "\n".join(str(1381129206300000 + n * 100_001) for n in range(count)) + "\n",
        encoding="utf-8",
    )
    return path


def interrupted_run(*args: str, env: Mapping[str, str], cwd: Path) -> tuple[int, str, str]:
    """`lazcancel run ARGS` given one Ctrl-C a second into its batch: exit code, stdout, stderr."""
    # A session of its own, so the interrupt reaches the whole group, as Ctrl-C at a terminal.
    proc = subprocess.Popen(
        [sys.executable, "-m", "lazcancel", "run", *args],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("batch_id: ")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=40)
    return proc.returncode, out, err


def test_ctrl_c_aborts_at_an_item_boundary_and_the_store_survives(
    home: Path, tmp_path: Path
) -> None:
    orders = many_orders(tmp_path / "many.csv")
    env = clean_env(LAZCANCEL_HOME=str(home), LAZCANCEL_RATE_LIMIT="40")
    code, out, err = interrupted_run(str(orders), "--sandbox", "--yes", env=env, cwd=tmp_path)

    assert code == 130, err
    assert "aborting batch" in err and "Traceback" not in err
    assert "state: aborted" in out
    assert re.search(r"skipped\s+│ aborted\s+│\s+\d+", out)
    assert "recorded as skipped (aborted). A sandbox run starts from a clean store" in err
    assert "continues" not in err


def test_ctrl_c_says_running_the_file_again_continues(
    redis_url: str, sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    orders = many_orders(tmp_path / "many.csv")
    env = clean_env(REDIS_URL=redis_url, LAZCANCEL_RATE_LIMIT="40", **sandbox_env)
    code, out, err = interrupted_run(str(orders), "--yes", env=env, cwd=tmp_path)

    assert code == 130, err
    assert "state: aborted" in out
    assert (
        "orders not reached are recorded as skipped (aborted). Running the same file again "
        "continues; items already cancelled are then skipped as already_canceled."
    ) in err
    assert "clean store" not in err


def test_worker_stops_cleanly_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lazcancel", "worker"],
        env=clean_env(REDIS_URL=redis_url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    events: list[str] = []
    while "worker_started" not in events:
        line = proc.stderr.readline()
        assert line, "the worker exited before it started"
        events.append(json.loads(line)["event"])
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 0, err
    assert [json.loads(line)["event"] for line in err.splitlines()][-2:] == [
        "worker_stopping",
        "worker_stopped",
    ]
    assert out == ""


def test_run_exits_1_when_items_fail(
    redis_url: str, sandbox_env: dict[str, str], orders_csv: Path
) -> None:
    control = sandbox_env["LAZADA_API_URL"].removesuffix("/rest") + "/_sandbox/faults"
    plan = json.dumps({"rate": 1.0, "kinds": ["html502"], "seed": 1}).encode()
    request = urllib.request.Request(
        control, data=plan, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    config = orders_csv.parent / "fast-retry.toml"
    config.write_text("[retry]\nattempts = 1\nbackoff_base = 0.01\nbackoff_cap = 0.02\n")
    env = clean_env(REDIS_URL=redis_url, LAZCANCEL_CONFIG=str(config), **sandbox_env)

    run = lazcancel("run", str(orders_csv), "--yes", "--json", env=env, cwd=orders_csv.parent)

    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert summary["state"] == "done" and summary["cancelled"] == 0
    assert summary["failed"] == 4 and summary["failed_by_code"] == {"upstream_error": 4}
