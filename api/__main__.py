"""Run the KANE worker: `python -m api` (the Procfile's web process)."""

from __future__ import annotations

import signal
import sys

import uvicorn
from loguru import logger
from pydantic import ValidationError

from api.server import create_app
from settings import Settings


def main() -> int:
    """Load the settings, say which engines run, and serve the HTTP API until SIGTERM."""
    logger.remove()
    try:
        settings = Settings()
    except ValidationError as e:
        logger.add(sys.stderr, level="INFO")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in e.errors()
        )
        logger.error(f"Configuration refused: {problems}")
        return 2
    logger.add(sys.stderr, level=settings.kane_log_level.upper())

    for stage, engine in settings.describe_engines().items():
        logger.info(f"{stage:>9}: {engine}")
    missing = settings.missing_keys()
    if missing:
        logger.warning("Sessions cannot start until these are set: " + "; ".join(missing))
    if settings.is_development and not settings.kane_api_token and not settings.kane_jwt_secret:
        logger.warning("KANE_ENV=development and no credentials set: /connect is open")

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    # that was there before it; make that one a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings),
        host=settings.kane_host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=15,
    )
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
