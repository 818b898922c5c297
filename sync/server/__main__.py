"""`python -m sync.server --db PATH --port 8080 --hub HUB_ID=SECRET_FILE --operator-token-file F`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sync.server import RateLimit, serve

logger = logging.getLogger("sync.server")


def _hub(text: str) -> tuple[str, bytes]:
    hub_id, sep, path = text.partition("=")
    if not sep or not hub_id or not path:
        raise argparse.ArgumentTypeError("expected HUB_ID=/path/to/secret/file")
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read the secret of {hub_id}: {err}") from err
    if len(secret) < 32:
        raise argparse.ArgumentTypeError(f"the secret of {hub_id} is shorter than 32 bytes")
    return hub_id, secret


def _token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read the operator token: {err}") from err
    if len(token) < 16:
        raise argparse.ArgumentTypeError("the operator token is shorter than 16 characters")
    return token


def _rate(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sync.server", description="HomeGuard reference dispatch server"
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument(
        "--hub",
        type=_hub,
        action="append",
        required=True,
        metavar="HUB_ID=SECRET_FILE",
        help="a hub and the file holding its secret (repeatable)",
    )
    parser.add_argument(
        "--operator-token-file",
        type=_token,
        required=True,
        metavar="FILE",
        help="file holding the operator endpoint's bearer token",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate,
        default=None,
        metavar="N/SECONDS",
        help="answer 429 past N hub requests per hub in SECONDS (default: no limit)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    hubs = dict(args.hub)
    with serve(
        args.db,
        hubs,
        host=args.host,
        port=args.port,
        operator_token=args.operator_token_file,
        rate_limit=args.rate_limit,
    ) as running:
        logger.info("listening on %s for hubs %s", running.url, ", ".join(sorted(hubs)))
        stop.wait()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
