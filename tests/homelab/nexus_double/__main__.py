"""`python -m tests.homelab.nexus_double --host 127.N.0.1 --state-dir DIR --admin-password-file F`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from tests.homelab.nexus_double.server import NexusDouble, configure_logging

PID_NAME = "nexus.pid"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.homelab.nexus_double")
    parser.add_argument("--host", required=True, help="the address to listen on, e.g. 127.20.0.1")
    parser.add_argument("--state-dir", required=True, type=Path, help="pid file and nexus.log go here")
    parser.add_argument(
        "--admin-password-file", required=True, type=Path, help="file holding admin's password"
    )
    parser.add_argument("--eula-accepted", action="store_true", help="start with the EULA accepted")
    parser.add_argument(
        "--starting-seconds",
        type=float,
        default=0.0,
        help="answer /v1/status/writable with 503 for this long after start",
    )
    parser.add_argument("--rest-port", type=int, default=8081)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(args.state_dir)
    log = logging.getLogger("nexus.double")
    password = args.admin_password_file.read_text().rstrip("\r\n")
    if not password:
        log.error("%s is empty; admin needs a password", args.admin_password_file)
        return 2
    double = NexusDouble(
        args.host,
        args.rest_port,
        password,
        eula_accepted=args.eula_accepted,
        starting_seconds=args.starting_seconds,
    )

    def stop(signum: int, _frame: object) -> None:
        log.info("Received signal %d, stopping", signum)
        # shutdown() waits for serve_forever, which runs on this (the main) thread.
        threading.Thread(target=double.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pid_file = args.state_dir / PID_NAME
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        double.serve_forever()
    except OSError as exc:
        log.error("Cannot listen on %s:%d: %s", args.host, args.rest_port, exc)
        return 1
    finally:
        pid_file.unlink(missing_ok=True)
        log.info("Stopped")
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    # Skip interpreter teardown: with the generated client loaded it takes most of a second.
    os._exit(code)
