"""The ``lazcancel`` command line: options, exit codes, signals, and what each command opens.

It wires settings, Redis (embedded or REDIS_URL), the sandbox and the worker together for one
command; the cancel flow lives in ``jobs/``, output formats in ``lazcancel.report``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from rich.console import Group
from rich.live import Live
from rich.text import Text

from jobs.enqueue import StagingReport, new_batch_id
from lazada_sandbox import SandboxServer, Scenario
from lazcancel.embedded_redis import RedisServer
from lazcancel.errors import InputError, SettingsError
from lazcancel.log import configure_logging
from lazcancel.models import Outcome
from lazcancel.orders_file import RejectedRow, read_orders
from lazcancel.preview import confirm_hook
from lazcancel.report import (
    FORMATS,
    LogProgress,
    TerminalProgress,
    outcome_table,
    print_status,
    print_summary,
    progress_line,
    summary_dict,
    text_console,
    write_results,
)
from lazcancel.settings import DEFAULT_SELLER, SellerSettings, Settings, load_settings
from lazcancel.store import BatchSpec, BatchStatus, BatchStore
from worker.runner import Submitted, process_batch, submit_batch
from worker.runtime import connect_redis, open_runtime
from worker.settings import WorkerMode, build_worker, run_sweeps_once

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# What a shell reports for a tool that SIGPIPE ended (``cat big | head -1``): a reader that
# stopped early is no error to report, yet a truncated export must not pass as complete.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
MAX_PORT = 65535

HOME_ENV = "LAZCANCEL_HOME"
DEFAULT_HOME = "~/.lazcancel"
DEFAULT_REASON = "Out of Stock"
# The sandbox has no rate limit of its own; a sandbox run paces itself at this unless
# LAZCANCEL_RATE_LIMIT says otherwise, so that a demo of thousands of orders takes seconds.
SANDBOX_RATE_LIMIT = 100.0
SANDBOX_SEED = 1
SANDBOX_ORDERS = 200
SANDBOX_PORT = 8765
SANDBOX_DIR = "sandbox"
MAX_LISTED_REJECTED = 1000
# The skip code of an item whose order does not offer the requested cancel reason.
REASON_NOT_OFFERED = "reason_not_offered"
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
STATUS_POLL_S = 0.5
WATCH_POLL_S = 1.0
REDIS_CHECK_TIMEOUT_S = 3.0

log = structlog.get_logger(__name__)

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(args))
    except InputError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (``| head``); stop writing without a trace, and
        # keep the flush at exit from failing on the closed pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except RedisError as exc:
        _say(f"error: Redis: {exc}")
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lazcancel",
        description="Cancel unshipped Lazada order items in bulk, with a per-item record.",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="log level on stderr (default: warning for `run` on a terminal, else info)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    batch_options = _batch_options()

    run = commands.add_parser(
        "run", parents=[batch_options], help="enqueue FILE and process it here, with a summary"
    )
    run.set_defaults(handler=cmd_run)
    enqueue = commands.add_parser(
        "enqueue", parents=[batch_options], help="enqueue FILE for `lazcancel worker`"
    )
    enqueue.set_defaults(handler=cmd_enqueue)

    worker = commands.add_parser("worker", help="run the arq worker that processes batches")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(handler=cmd_worker)

    status = commands.add_parser("status", help="a batch's state, counts and progress")
    status.add_argument("batch_id", metavar="BATCH_ID")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.add_argument("--watch", action="store_true", help="refresh until the batch finishes")
    _sandbox_store_option(status)
    status.set_defaults(handler=cmd_status)

    results = commands.add_parser("results", help="one row per order item of a batch")
    results.add_argument("batch_id", metavar="BATCH_ID")
    results.add_argument("--format", choices=FORMATS, default="csv", help="default: csv")
    results.add_argument("--output", metavar="PATH", help="write to PATH (default: stdout)")
    _sandbox_store_option(results)
    results.set_defaults(handler=cmd_results)

    abort = commands.add_parser("abort", help="stop a batch at the next item boundary")
    abort.add_argument("batch_id", metavar="BATCH_ID")
    _sandbox_store_option(abort)
    abort.set_defaults(handler=cmd_abort)

    sweep = commands.add_parser("sweep", help="run the sweep rules of LAZCANCEL_CONFIG")
    sweep.add_argument("--once", action="store_true", help="run every rule now, here, and exit")
    sweep.add_argument(
        "--dry-run", action="store_true", help="with --once: record would_cancel, cancel nothing"
    )
    sweep.set_defaults(handler=cmd_sweep, burst=False)

    sandbox = commands.add_parser("sandbox", help="serve a local imitation of the Lazada API")
    _sandbox_options(sandbox)
    sandbox.set_defaults(handler=cmd_sandbox)
    return parser


def _batch_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("file", metavar="FILE", help="CSV or text file of order ids; - for stdin")
    options.add_argument(
        "--reason",
        type=_non_blank,
        default=DEFAULT_REASON,
        help=f"cancel reason name (any case) or id (default: {DEFAULT_REASON!r})",
    )
    options.add_argument(
        "--sku",
        type=_non_blank,
        action="append",
        default=[],
        help="only items of this seller SKU (repeatable)",
    )
    options.add_argument(
        "--dry-run", action="store_true", help="validate with Lazada, cancel nothing"
    )
    options.add_argument("--seller", default=DEFAULT_SELLER, help="seller name from the settings")
    options.add_argument(
        "--allow-whole-package",
        action="store_true",
        help="also cancel the other items of a packed package",
    )
    options.add_argument(
        "--skip-invalid", action="store_true", help="enqueue the valid rows despite rejected ones"
    )
    options.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    options.add_argument(
        "--sandbox",
        action="store_true",
        help="run against an in-process sandbox seeded with the file's orders",
    )
    options.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return options


def _sandbox_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox", action="store_true", help="a batch of the last `run --sandbox`"
    )


def _sandbox_options(sandbox: argparse.ArgumentParser) -> None:
    sandbox.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    sandbox.add_argument(
        "--port", type=_port, default=SANDBOX_PORT, help=f"default: {SANDBOX_PORT}; 0 picks one"
    )
    seed = sandbox.add_mutually_exclusive_group()
    seed.add_argument("--scenario", metavar="FILE", help="scenario JSON (see docs/sandbox.md)")
    seed.add_argument("--orders", metavar="FILE", help="seed the store with this order file")
    sandbox.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a --host that other machines can reach",
    )


def _non_blank(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return text


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"port must be 0-{MAX_PORT}, not {port}")
    return port


def _configure_logging(args: argparse.Namespace) -> None:
    configure_logging(level=_log_level(args))


def _log_level(args: argparse.Namespace) -> str:
    if args.log_level:
        return str(args.log_level)
    # Per-item events would bury the progress bar; the summary and `results` carry them.
    return "warning" if args.command == "run" and sys.stderr.isatty() else "info"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _out(message: str) -> None:
    print(message, flush=True)


# -- settings, Redis ----------------------------------------------------------------------------


def lazcancel_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def make_home_dir(path: Path) -> None:
    """Create ``path`` (LAZCANCEL_HOME or a directory in it) unless it exists.

    A SettingsError names LAZCANCEL_HOME when ``path`` cannot be a writable directory.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _home_error(path, exc.strerror or str(exc)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise _home_error(path, "not writable")


def _home_error(path: Path, problem: str) -> SettingsError:
    # mkdir says "File exists" or "Not a directory"; the file in the way says more.
    in_the_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        problem = f"{in_the_way} is a file, not a directory"
    setting = (
        f"{HOME_ENV}={os.environ[HOME_ENV]}"
        if os.environ.get(HOME_ENV)
        else f"{HOME_ENV} (unset, so {DEFAULT_HOME})"
    )
    return SettingsError(
        f"{setting}: cannot use {path} as a directory ({problem}); set {HOME_ENV} to a "
        "directory you can write"
    )


def _settings(*, sandbox: bool) -> Settings:
    env = dict(os.environ)
    if sandbox:
        # A sandbox run must never reach a real gateway, whatever the environment holds.
        env = {key: value for key, value in env.items() if not key.startswith("LAZADA_")}
    return load_settings(env)


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.asynccontextmanager
async def redis_endpoint(settings: Settings) -> AsyncIterator[str]:
    """The Redis URL to use: REDIS_URL once it answers, else the embedded server."""
    if settings.redis_url:
        await check_redis(settings.redis_url)
        yield settings.redis_url
        return
    with embedded_redis(lazcancel_home()) as url:
        yield url


async def check_redis(url: str) -> None:
    try:
        client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_CHECK_TIMEOUT_S,
            socket_timeout=REDIS_CHECK_TIMEOUT_S,
        )
    except ValueError as exc:
        raise SettingsError(f"REDIS_URL {redact_url(url)!r} is not a Redis URL: {exc}") from None
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise SettingsError(
            f"cannot reach Redis at {redact_url(url)} ({exc}); check REDIS_URL, or unset it "
            "to use the embedded redis-server"
        ) from None
    finally:
        await client.aclose()


@contextlib.contextmanager
def embedded_redis(home: Path) -> Iterator[str]:
    """A private redis-server keeping its data in ``home/redis``, shared by commands.

    One already answering there (another lazcancel command) is used; else one is started.
    Each command holds a shared lock on ``home/redis.users`` while it uses the server, and
    the last one to leave stops it: a lock, unlike a connection, ends with its process.
    """
    server = RedisServer(data_dir=home / "redis")
    if len(str(server.socket_path).encode()) > MAX_SOCKET_PATH:
        raise SettingsError(
            f"{HOME_ENV} {home} is too long a path for Redis's unix socket; set a shorter "
            f"{HOME_ENV}, or set REDIS_URL"
        )
    make_home_dir(home)
    with _locked(home / "redis.lock"):
        started = not server.answering()
        if started:
            server.start()
            log.info("embedded_redis_started", data_dir=str(server.data_dir))
        users = (home / "redis.users").open("a")
        fcntl.flock(users, fcntl.LOCK_SH)
    try:
        yield server.url
    finally:
        with _locked(home / "redis.lock"):
            _stop_if_last(server, users, started=started)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stop_if_last(server: RedisServer, users: TextIO, *, started: bool) -> None:
    with users:
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("embedded_redis_left_running", data_dir=str(server.data_dir))
            return
        if started:
            server.stop()
        else:
            _shutdown(server.url)
    log.info("embedded_redis_stopped", data_dir=str(server.data_dir))


def _shutdown(url: str) -> None:
    """Stop a server that a command which has exited since had started."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        client.shutdown()
    except RedisError as exc:
        log.warning("embedded_redis_shutdown_failed", error=str(exc))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def sandbox_store(home: Path) -> AsyncIterator[str]:
    """The private Redis of sandbox runs, in HOME/sandbox, emptied as each run starts.

    Never REDIS_URL nor HOME/redis: a worker there holds real credentials, and would take
    the sandbox batch's chunks, with the file's real order ids, to the real Lazada.
    """
    sandbox_home = home / SANDBOX_DIR
    make_home_dir(sandbox_home)
    with _exclusive(sandbox_home / "run.lock"), embedded_redis(sandbox_home) as url:
        client = connect_redis(url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        yield url


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another `lazcancel run --sandbox` is using {path.parent}; wait for it to "
                f"finish, or set another {HOME_ENV}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def store_endpoint(*, sandbox: bool) -> AsyncIterator[str]:
    """Where `status`, `results` and `abort` find batches: the store, or the sandbox runs'."""
    if sandbox:
        with embedded_redis(lazcancel_home() / SANDBOX_DIR) as url:
            yield url
        return
    async with redis_endpoint(_settings(sandbox=False)) as url:
        yield url


@contextlib.asynccontextmanager
async def open_store(redis_url: str) -> AsyncIterator[BatchStore]:
    client = connect_redis(redis_url)
    try:
        yield BatchStore(client)
    finally:
        await client.aclose()


async def known_status(store: BatchStore, batch_id: str, redis_url: str) -> BatchStatus:
    status = await store.status(batch_id)
    if status is None:
        raise InputError(
            f"unknown batch {batch_id!r}: not in Redis at {redact_url(redis_url)} (a mistyped "
            f"id, another REDIS_URL or {HOME_ENV}, or its results expired)"
        )
    return status


# -- the sandbox ------------------------------------------------------------------------------


def seed_scenario(
    source: Path,
    label: str,
    skus: Sequence[str] = (),
    *,
    on_rejected: Callable[[RejectedRow], None] = lambda row: None,
) -> Scenario:
    """A sandbox store holding the file's orders, its named items and its SKUs.

    Rejected rows seed nothing; each is passed to ``on_rejected``.
    """
    order_ids: dict[str, None] = {}
    item_ids: dict[str, dict[str, None]] = {}
    named_skus: dict[str, None] = dict.fromkeys(skus)
    for row in read_orders(source, name=label):
        if isinstance(row, RejectedRow):
            on_rejected(row)
            continue
        order_ids.setdefault(row.order_id)
        if row.order_item_id:
            item_ids.setdefault(row.order_id, {}).setdefault(row.order_item_id)
        if row.sku:
            named_skus.setdefault(row.sku)
    return Scenario.generate(
        order_ids=list(order_ids),
        item_ids={order: list(items) for order, items in item_ids.items()},
        skus=list(named_skus) or None,
        seed=SANDBOX_SEED,
    )


def sandbox_settings(settings: Settings, scenario: Scenario, url: str, seller: str) -> Settings:
    """``settings`` with ``seller`` as the only seller, pointed at the sandbox at ``url``."""
    owner = next(iter(scenario.sellers.values()))
    pointed = SellerSettings(
        name=seller,
        app_key=scenario.app_key,
        app_secret=scenario.app_secret,
        access_token=owner.access_token,
        refresh_token=owner.refresh_token,
        api_url=url,
        auth_url=url,
    )
    explicit_rate = (os.environ.get("LAZCANCEL_RATE_LIMIT") or "").strip()
    rate = settings.rate_limit if explicit_rate else SANDBOX_RATE_LIMIT
    return dataclasses.replace(settings, sellers={seller: pointed}, rate_limit=rate)


@contextlib.asynccontextmanager
async def running_sandbox(
    settings: Settings, source: Path, label: str, args: argparse.Namespace
) -> AsyncIterator[Settings]:
    scenario = seed_scenario(source, label, args.sku)
    async with SandboxServer(scenario, host="127.0.0.1", port=0) as sandbox:
        log.info("sandbox_ready", url=sandbox.url, orders=len(scenario.orders))
        yield sandbox_settings(settings, scenario, sandbox.url, args.seller)


@contextlib.contextmanager
def order_source(file: str, *, buffer_stdin: bool) -> Iterator[tuple[str | Path, str]]:
    """The order file to read and its label; stdin is copied to a file when read twice."""
    if file != "-":
        yield Path(file), file
        return
    if not buffer_stdin:
        yield "-", "<stdin>"
        return
    with tempfile.TemporaryDirectory(prefix="lazcancel-stdin-") as tmp:
        path = Path(tmp) / "orders.csv"
        with path.open("wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
        yield path, "<stdin>"


# -- run and enqueue ----------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    return await _submit(args, process=True)


async def cmd_enqueue(args: argparse.Namespace) -> int:
    if args.sandbox:
        raise InputError(
            "enqueue --sandbox: an in-process sandbox ends with this command, before any "
            "worker could call it; use `lazcancel run --sandbox`, or start `lazcancel sandbox` "
            "and point LAZADA_API_URL at it"
        )
    return await _submit(args, process=False)


async def _submit(args: argparse.Namespace, *, process: bool) -> int:
    _check_can_confirm(args)
    settings = _settings(sandbox=args.sandbox)
    if not args.sandbox:
        settings.seller(args.seller)
    async with contextlib.AsyncExitStack() as stack:
        source, label = stack.enter_context(order_source(args.file, buffer_stdin=args.sandbox))
        rows = read_orders(source, name=label)
        if args.sandbox:
            settings = await stack.enter_async_context(
                running_sandbox(settings, Path(source), label, args)
            )
            redis_url = await stack.enter_async_context(sandbox_store(lazcancel_home()))
        else:
            redis_url = await stack.enter_async_context(redis_endpoint(settings))
        spec = _spec(args, label)
        submitted = await submit_batch(
            settings=settings,
            redis_url=redis_url,
            spec=spec,
            rows=rows,
            skip_invalid=args.skip_invalid,
            before_queue=_before_queue(args, spec, settings, redis_url),
        )
        if not process:
            _report_enqueued(args, submitted, embedded=not settings.redis_url)
            return EXIT_OK
        if not args.json:
            _out(f"batch_id: {submitted.batch_id}")
        return await _process_and_report(args, settings, redis_url, submitted)
    raise AssertionError("an exit stack swallowed an exception")


def _spec(args: argparse.Namespace, label: str) -> BatchSpec:
    return BatchSpec(
        batch_id=new_batch_id(),
        seller=args.seller,
        reason=args.reason,
        skus=tuple(args.sku),
        dry_run=args.dry_run,
        allow_whole_package=args.allow_whole_package,
        source=label,
    )


def _check_can_confirm(args: argparse.Namespace) -> None:
    if args.dry_run or args.yes:
        return
    if args.file == "-" or not sys.stdin.isatty():
        raise InputError(
            "cancelling needs a confirmation, and there is no terminal to ask on: pass --yes "
            "to confirm, or --dry-run to validate only"
        )


def _before_queue(
    args: argparse.Namespace, spec: BatchSpec, settings: Settings, redis_url: str
) -> Callable[[BatchStore, StagingReport], Awaitable[None]]:
    async def hook(store: BatchStore, report: StagingReport) -> None:
        if report.rejected_count:
            _report_skipped_rows(report)
        if not report.orders:
            raise InputError(f"{spec.source}: no valid rows; nothing was enqueued")
        if not (args.dry_run or args.yes):
            await _preview_gate(settings, redis_url, spec, store, report)
            await _confirm(report, spec)

    return hook


async def _preview_gate(
    settings: Settings, redis_url: str, spec: BatchSpec, store: BatchStore, report: StagingReport
) -> None:
    """Refuse a batch whose dry-run preview exceeds confirm_threshold (docs/sweeps.md)."""
    if settings.confirm_threshold is None:
        return
    runtime = await open_runtime(settings, redis_url=redis_url)
    try:
        check = confirm_hook(
            client=runtime.client_for(spec.seller),
            spec=spec,
            threshold=settings.confirm_threshold,
            cancellable=settings.cancellable_statuses,
            concurrency=settings.concurrency,
        )
        if check is not None:
            await check(store, report)
    finally:
        await runtime.close()


def _report_skipped_rows(report: StagingReport) -> None:
    _list_rejected(
        f"warning: {report.rejected_count} row(s) rejected and left out (--skip-invalid):",
        report.rejected,
        count=report.rejected_count,
    )


def _list_rejected(header: str, rows: Sequence[RejectedRow], *, count: int) -> None:
    _say(header)
    for row in rows:
        _say(f"  {row}")
    hidden = count - len(rows)
    if hidden > 0:
        _say(f"  ... and {hidden} more")


async def _confirm(report: StagingReport, spec: BatchSpec) -> None:
    sys.stderr.write(
        f"Cancel items of {report.orders} order(s) for seller {spec.seller!r} with reason "
        f"{spec.reason!r}? [y/N] "
    )
    sys.stderr.flush()
    answer = await asyncio.to_thread(sys.stdin.readline)
    if answer.strip().lower() not in {"y", "yes"}:
        raise InputError("not confirmed; nothing was enqueued")


def _report_enqueued(args: argparse.Namespace, submitted: Submitted, *, embedded: bool) -> None:
    counts = {
        "batch_id": submitted.batch_id,
        "orders": submitted.orders,
        "duplicates": submitted.duplicates,
        "rows_rejected": submitted.rows_rejected,
        "chunks": submitted.chunks,
    }
    if args.json:
        _out(json.dumps(counts))
        return
    _say(
        f"enqueued {submitted.orders} order(s) in {submitted.chunks} chunk(s); duplicates "
        f"merged: {submitted.duplicates}; rows rejected: {submitted.rows_rejected}"
    )
    where = f"the same {HOME_ENV}" if embedded else "the same REDIS_URL"
    _say(f"process it with `lazcancel worker --burst` ({where})")
    _out(submitted.batch_id)


# -- processing in this process -----------------------------------------------------------------


class Interrupts:
    """SIGINT or SIGTERM once: abort the batch at an item boundary; twice: stop at once."""

    def __init__(self, redis_url: str, batch_id: str) -> None:
        self.redis_url = redis_url
        self.batch_id = batch_id
        self.count = 0
        self.work: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            yield self
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        self.count += 1
        if self.count == 1:
            _say(
                f"interrupted: aborting batch {self.batch_id} at the next item boundary "
                "(interrupt again to stop at once)"
            )
            task = asyncio.get_running_loop().create_task(self._abort())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self.work is not None and not self.work.done():
            _say("stopping now")
            self.work.cancel()

    async def _abort(self) -> None:
        async with open_store(self.redis_url) as store:
            aborting = await store.abort(self.batch_id)
        log.info("batch_abort_requested", batch_id=self.batch_id, accepted=aborting)


async def _process_and_report(
    args: argparse.Namespace, settings: Settings, redis_url: str, submitted: Submitted
) -> int:
    interrupts = Interrupts(redis_url, submitted.batch_id)
    with _progress(submitted.orders, level=_log_level(args)) as progress, interrupts.installed():
        interrupts.work = asyncio.create_task(
            _until_finished(settings, redis_url, submitted.batch_id, progress.update)
        )
        await asyncio.wait({interrupts.work})
    stopped = interrupts.work.cancelled()
    if stopped:
        async with open_store(redis_url) as store:
            status = await known_status(store, submitted.batch_id, redis_url)
    else:
        status = interrupts.work.result()
    _report_run(args, submitted.batch_id, status)
    _warn_if_reason_never_offered(submitted.batch_id, status, sandbox=args.sandbox)
    if interrupts.count:
        _explain_interrupt(submitted.batch_id, status, stopped=stopped, sandbox=args.sandbox)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if status.counts.get("failed", 0) else EXIT_OK


def _progress(total_orders: int, *, level: str) -> TerminalProgress | LogProgress:
    if not sys.stderr.isatty():
        return LogProgress()
    return TerminalProgress(
        total_orders=total_orders,
        # While the bar is shown, sys.stderr is rich's proxy, which prints above the bar.
        on_live=lambda: configure_logging(level=level, json=False, stream=sys.stderr),
        on_done=lambda: configure_logging(level=level, stream=sys.stderr),
    )


async def _until_finished(
    settings: Settings,
    redis_url: str,
    batch_id: str,
    on_progress: Callable[[BatchStatus], Awaitable[None]],
) -> BatchStatus:
    """Process the queue here, then wait for chunks another worker may still hold."""
    status = await process_batch(
        settings=settings,
        redis_url=redis_url,
        batch_id=batch_id,
        on_progress=on_progress,
        progress_every=STATUS_POLL_S,
    )
    async with open_store(redis_url) as store:
        while not status.finished:
            await asyncio.sleep(STATUS_POLL_S)
            status = await known_status(store, batch_id, redis_url)
            await on_progress(status)
    return status


def _report_run(args: argparse.Namespace, batch_id: str, status: BatchStatus) -> None:
    if args.json:
        _out(json.dumps(summary_dict(batch_id, status)))
        return
    print_summary(text_console(), batch_id, status, sandbox=args.sandbox)
    sys.stdout.flush()


def _warn_if_reason_never_offered(batch_id: str, status: BatchStatus, *, sandbox: bool) -> None:
    """Every item refused for its reason: most likely a mistyped --reason, worth one line."""
    not_offered = status.codes.get(Outcome.SKIPPED.value, {}).get(REASON_NOT_OFFERED, 0)
    if not status.items_done or not_offered != status.items_done:
        return
    where = " --sandbox" if sandbox else ""
    _say(
        f"warning: none of the orders offered the cancel reason {status.spec.reason!r}; "
        f"check --reason (the messages in `lazcancel results {batch_id}{where}` list the "
        "reasons each order offered)"
    )


def _explain_interrupt(batch_id: str, status: BatchStatus, *, stopped: bool, sandbox: bool) -> None:
    if not stopped and status.finished:
        again = (
            " A sandbox run starts from a clean store: running the file again with --sandbox"
            " starts over, it does not continue this batch."
            if sandbox
            else " Running the same file again continues; items already cancelled are then"
            " skipped as already_canceled."
        )
        _say(
            f"batch {batch_id} {status.state}: orders not reached are recorded as skipped "
            f"(aborted).{again}"
        )
        return
    if sandbox:
        _say(f"stopped with batch {batch_id} {status.state}; its record stays incomplete")
        return
    _say(
        f"stopped with batch {batch_id} {status.state} and chunks still queued. "
        f"`lazcancel worker --burst` (same REDIS_URL or {HOME_ENV}) records the rest as "
        f"aborted; `lazcancel status {batch_id}` shows where it stands."
    )


# -- worker -------------------------------------------------------------------------------------


async def cmd_worker(args: argparse.Namespace, *, mode: WorkerMode = "chunks") -> int:
    settings = _settings(sandbox=False)
    async with redis_endpoint(settings) as redis_url:
        worker = build_worker(
            settings, redis_url=redis_url, burst=args.burst, handle_signals=False, mode=mode
        )
        main_task = asyncio.create_task(worker.main())
        worker.main_task = main_task
        stopping: set[asyncio.Task[None]] = set()

        def on_signal() -> None:
            if not stopping:
                # Finish the chunks in hand, start no new one: every chunk ends recorded.
                worker.allow_pick_jobs = False
                log.info("worker_stopping", running=len(worker.tasks))
                stopping.add(asyncio.get_running_loop().create_task(_drain(worker, main_task)))
            else:
                log.warning("worker_stopping_now", running=len(worker.tasks))
                worker.handle_sig(signal.SIGINT)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        log.info("worker_started", burst=args.burst, mode=mode)
        try:
            await asyncio.wait({main_task})
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            # Jobs cancelled by a second signal end cancelled; that is how they stop.
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()
        failure = None if main_task.cancelled() else main_task.exception()
        if failure is not None:
            raise failure
        log.info(
            "worker_stopped",
            jobs_complete=worker.jobs_complete,
            jobs_failed=worker.jobs_failed,
            jobs_retried=worker.jobs_retried,
        )
    return EXIT_OK


async def _drain(worker: Any, main_task: asyncio.Task[None]) -> None:
    running = [task for task in worker.tasks.values() if not task.done()]
    while running:
        await asyncio.wait(running)
        running = [task for task in worker.tasks.values() if not task.done()]
    main_task.cancel()


# -- sweeps -------------------------------------------------------------------------------------


async def cmd_sweep(args: argparse.Namespace) -> int:
    """The sweep scheduler (an arq cron worker); with --once, every rule now (docs/sweeps.md)."""
    settings = _settings(sandbox=False)
    if not settings.sweeps:
        raise InputError(
            "no sweep rules: add [[sweeps]] tables to the LAZCANCEL_CONFIG file "
            "(config/lazcancel.example.toml shows every key)"
        )
    if not args.once:
        if args.dry_run:
            raise InputError("--dry-run needs --once; for scheduled dry runs set dry_run = true")
        return await cmd_worker(args, mode="sweep")
    async with redis_endpoint(settings) as redis_url:
        reports = await run_sweeps_once(settings, redis_url=redis_url, dry_run=args.dry_run)
        failed = False
        async with open_store(redis_url) as store:
            for report in reports:
                status = await store.status(report.batch_id)
                if report.error:
                    _out(f"{report.batch_id}\terror: {report.error}")
                elif not report.ran:
                    _out(f"{report.batch_id}\talready ran this minute")
                elif status is not None:
                    counts = " ".join(f"{k}={v}" for k, v in status.counts.items())
                    _out(
                        f"{report.batch_id}\t{status.state}\titems={report.items_selected} {counts}"
                    )
                failed = failed or bool(report.error) or bool(status and status.counts["failed"])
    return EXIT_FAILED if failed else EXIT_OK


# -- status, results, abort ---------------------------------------------------------------------


async def cmd_status(args: argparse.Namespace) -> int:
    async with (
        store_endpoint(sandbox=args.sandbox) as redis_url,
        open_store(redis_url) as store,
    ):
        status = await known_status(store, args.batch_id, redis_url)
        if args.watch:
            await _watch(args, store, redis_url, status)
        elif args.json:
            _out(json.dumps(summary_dict(args.batch_id, status)))
        else:
            print_status(text_console(), args.batch_id, status, sandbox=args.sandbox)
    return EXIT_OK


async def _watch(
    args: argparse.Namespace, store: BatchStore, redis_url: str, status: BatchStatus
) -> None:
    if sys.stdout.isatty() and not args.json:
        await _watch_live(args.batch_id, store, redis_url, status)
        return
    last: str | None = None
    while True:
        line = (
            json.dumps(summary_dict(args.batch_id, status)) if args.json else progress_line(status)
        )
        if line != last:
            _out(line)
            last = line
        if status.finished:
            break
        await asyncio.sleep(WATCH_POLL_S)
        status = await known_status(store, args.batch_id, redis_url)


async def _watch_live(
    batch_id: str, store: BatchStore, redis_url: str, status: BatchStatus
) -> None:
    def view(current: BatchStatus) -> Group:
        return Group(
            Text(f"batch_id: {batch_id}\n{progress_line(current)}"), outcome_table(current)
        )

    with Live(view(status), refresh_per_second=4) as live:
        while not status.finished:
            await asyncio.sleep(WATCH_POLL_S)
            status = await known_status(store, batch_id, redis_url)
            live.update(view(status))


async def cmd_results(args: argparse.Namespace) -> int:
    async with (
        store_endpoint(sandbox=args.sandbox) as redis_url,
        open_store(redis_url) as store,
    ):
        status = await known_status(store, args.batch_id, redis_url)
        with results_output(args.output, args.format) as out:
            rows = await write_results(
                store.iter_results(args.batch_id),
                out,
                fmt=args.format,
                batch_id=args.batch_id,
                seller=status.spec.seller,
            )
    log.info("results_written", batch_id=args.batch_id, rows=rows, format=args.format)
    return EXIT_OK


@contextlib.contextmanager
def results_output(path: str | None, fmt: str) -> Iterator[TextIO]:
    """stdout, or PATH written through a temporary file so a failure leaves no half file."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise InputError(f"--output {path}: is a directory; name a file to write")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    # A BOM lets spreadsheet programs read the CSV as UTF-8 (Thai and Vietnamese messages).
    encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
    try:
        handle = partial.open("w", encoding=encoding, newline="")
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        with handle:
            yield handle
        try:
            os.replace(partial, target)
        except OSError as exc:
            raise _output_error(path, exc) from None
    finally:
        partial.unlink(missing_ok=True)


def _output_error(path: str, exc: OSError) -> InputError:
    return InputError(f"--output {path}: cannot write it ({exc.strerror or exc})")


async def cmd_abort(args: argparse.Namespace) -> int:
    async with (
        store_endpoint(sandbox=args.sandbox) as redis_url,
        open_store(redis_url) as store,
    ):
        status = await known_status(store, args.batch_id, redis_url)
        if not await store.abort(args.batch_id):
            _out(f"batch {args.batch_id} is already {status.state}; nothing to abort")
            return EXIT_OK
    _out(f"batch {args.batch_id}: aborting at the next item boundary")
    _say(
        "the worker processing it records the orders not reached as skipped (aborted); "
        "chunks still queued are recorded so when a worker next runs"
    )
    return EXIT_OK


# -- sandbox ------------------------------------------------------------------------------------


async def cmd_sandbox(args: argparse.Namespace) -> int:
    if not (args.allow_non_loopback or is_loopback(args.host)):
        raise InputError(
            f"--host {args.host} is not a loopback address: the sandbox answers anyone who "
            "can reach it, and its credentials are printed in the clear. Use 127.0.0.1, or "
            "pass --allow-non-loopback"
        )
    scenario = _command_scenario(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sandbox = SandboxServer(scenario, host=args.host, port=args.port)
    try:
        try:
            await sandbox.start()
        except OSError as exc:
            raise InputError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from None
        _print_sandbox(sandbox, scenario)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sandbox.stop()
    return EXIT_OK


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _command_scenario(args: argparse.Namespace) -> Scenario:
    if args.orders:
        return _orders_scenario(args.orders)
    if not args.scenario:
        return Scenario.generate(n_orders=SANDBOX_ORDERS, seed=SANDBOX_SEED)
    try:
        return Scenario.from_file(args.scenario)
    except OSError as exc:
        raise InputError(f"--scenario {args.scenario}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--scenario {args.scenario}: not a usable scenario: {exc}") from None


def _orders_scenario(file: str) -> Scenario:
    """The sandbox seeded with ``file``'s valid rows; its rejected rows listed as `run` does."""
    rejected: list[RejectedRow] = []
    count = 0

    def note(row: RejectedRow) -> None:
        nonlocal count
        count += 1
        if len(rejected) < MAX_LISTED_REJECTED:
            rejected.append(row)

    scenario = seed_scenario(Path(file), file, on_rejected=note)
    if count:
        _list_rejected(
            f"warning: {count} row(s) of {file} rejected and left out of the sandbox:",
            rejected,
            count=count,
        )
    if not scenario.orders:
        raise InputError(f"--orders {file}: no valid rows; nothing to seed the sandbox with")
    return scenario


def _print_sandbox(sandbox: SandboxServer, scenario: Scenario) -> None:
    names = list(scenario.sellers)
    first = scenario.sellers[names[0]]
    _out(
        f"# Lazada sandbox at {sandbox.url}: {len(scenario.orders)} orders, seller "
        f"{names[0]!r}; stop it with Ctrl-C"
    )
    for key, value in (
        ("LAZADA_API_URL", sandbox.url),
        ("LAZADA_APP_KEY", scenario.app_key),
        ("LAZADA_APP_SECRET", scenario.app_secret),
        ("LAZADA_ACCESS_TOKEN", first.access_token),
    ):
        _out(f"export {key}={shlex.quote(value)}")
    for name in names[1:]:
        _out(f"# seller {name}: access_token {shlex.quote(scenario.sellers[name].access_token)}")
