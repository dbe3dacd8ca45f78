"""Serve Tributary with uvicorn: `python -m config.serve [--host H] [--port P] [--workers N]`.

With one worker this is `uvicorn config.asgi:application --lifespan on`. With several, each worker process binds its
own listening socket with SO_REUSEPORT, so the kernel spreads new connections evenly across the workers.
(`uvicorn --workers` shares one socket: with long-lived keep-alive connections opened in a burst, as a load balancer
or a load generator does, one worker often accepts most of them while the others idle; measured 94%/21% CPU.)

The parent only supervises: it stops every worker on SIGINT/SIGTERM, and exits non-zero if a worker dies, so the
process manager (systemd, Kubernetes) restarts the whole service rather than it running short of workers.

Metrics with several workers (config/metrics.py): the workers write them to files in `PROMETHEUS_MULTIPROC_DIR`,
which the parent sets before any worker starts (a fresh temporary directory, removed at exit, unless the variable
names one) and empties at start, so counts never carry over from a previous run; a worker that exits is marked dead
(its live gauges drop out of the scrape). Logs: uvicorn gets no logging configuration of its own, so its lines go
through the service's (LOG_FORMAT); its access log is off unless `--access-log`, since the service writes a richer
access line per request.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from types import FrameType

from config import footprint

footprint.import_uvicorn()  # without watchfiles, the file watcher of `--reload`, which this launcher does not offer

import uvicorn  # noqa: E402 - after footprint's import of it

from config.http import BoundedHttpToolsProtocol  # noqa: E402

APP = "config.asgi:application"


def _uvicorn_config(args: argparse.Namespace) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        host=args.host,
        port=args.port,
        lifespan="on",
        log_level=args.log_level,
        access_log=args.access_log,
        log_config=None,  # Django's LOGGING formats uvicorn's lines too (config/logging.py)
        # X-Forwarded-For/-Proto are believed only from the proxies the deployment names (README "Security settings").
        proxy_headers=bool(args.forwarded_allow_ips),
        forwarded_allow_ips=args.forwarded_allow_ips or None,
        # httptools' speed, with a bound on the request head and on the time to send a request (config/http.py).
        http=BoundedHttpToolsProtocol,
    )


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(args: argparse.Namespace) -> None:
    sock = _reuseport_socket(args.host, args.port)
    uvicorn.Server(_uvicorn_config(args)).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--access-log", dest="access_log", action="store_true", help="uvicorn's access log too (the service writes one)"
    )
    parser.add_argument("--no-access-log", dest="access_log", action="store_false", help="(the default)")
    parser.set_defaults(access_log=False)
    parser.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", ""),
        help="addresses of the proxies whose X-Forwarded-* headers are believed (default: none)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    # Every configuration problem, at once and before a socket is bound (config/startup.py).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    # Before anything imports prometheus_client: it picks its multiprocess mode from the variable at import.
    temporary = _prepare_metrics_dir(args.workers)
    try:
        from config.startup import exit_if_misconfigured

        exit_if_misconfigured()
        if args.workers == 1:
            uvicorn.Server(_uvicorn_config(args)).run()
            return 0
        return _supervise(args)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_metrics_dir(workers: int) -> str | None:
    """Empty the metrics directory the environment names, or make one for several workers; returns the directory to
    remove at exit (one this function made), if any."""
    path = os.environ.get(METRICS_DIR)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(glob.escape(path), "*.db")):
            os.remove(stale)  # a previous run's values: counters would otherwise continue from them
        return None
    if workers == 1:
        return None  # one process keeps its metrics in memory
    path = os.environ[METRICS_DIR] = tempfile.mkdtemp(prefix="tributary-metrics-")
    return path


def _mark_dead(pid: int | None) -> None:
    """A worker exited: its live gauges (requests in flight, bulkhead slots, breaker states) leave the scrape."""
    path = os.environ.get(METRICS_DIR)
    if path and pid is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _supervise(args: argparse.Namespace) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(args,), name=f"tributary-{i}") for i in range(args.workers)]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn shuts down gracefully (lifespan closes the pools)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.start()
    _mark_dead(os.getpid())  # the parent loaded the settings and URLs (metrics included): it serves nothing
    status = 0
    dead: set[int | None] = set()
    while any(worker.is_alive() for worker in workers):
        for worker in workers:
            worker.join(timeout=0.5)
            if not worker.is_alive() and worker.pid not in dead:
                dead.add(worker.pid)
                _mark_dead(worker.pid)
            if not worker.is_alive() and not stopping:
                print(f"{worker.name} exited with {worker.exitcode}: stopping the others", file=sys.stderr)  # noqa: T201
                status = 1
                stop(signal.SIGTERM, None)
    return status


if __name__ == "__main__":
    sys.exit(main())
