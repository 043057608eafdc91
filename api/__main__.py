"""Run the KANE worker: `python -m api` (the Procfile's web process)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import uvicorn
from loguru import logger
from pydantic import ValidationError

from api.server import create_app
from processors.stages import PipelineError, load_pipeline
from services.whisper_stt import preload_whisper_model
from settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Load the settings, say which engines run, and serve the HTTP API until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m api", description="Run the KANE worker.")
    parser.add_argument("--pipeline", type=Path, help="pipeline file (default: KANE_PIPELINE)")
    args = parser.parse_args(argv)
    logger.remove()
    try:
        settings = Settings()
    except ValidationError as e:
        logger.add(sys.stderr, level="INFO", diagnose=False, backtrace=False)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in e.errors()
        )
        logger.error(f"Configuration refused: {problems}")
        return 2
    # diagnose=False: a traceback must never print local variables (keys, tokens).
    logger.add(sys.stderr, level=settings.kane_log_level.upper(), diagnose=False, backtrace=False)
    if args.pipeline is not None:
        settings.kane_pipeline = args.pipeline
    try:
        pipeline = load_pipeline(settings.kane_pipeline)
    except PipelineError as e:
        logger.error(f"Configuration refused: {e}")
        return 2

    if settings.stt_engine == "whisper":
        try:  # once, here: a model that cannot load would end every session
            preload_whisper_model(settings.kane_whisper_model or None)
        except Exception as e:
            logger.error(f"Configuration refused: KANE_WHISPER_MODEL: {type(e).__name__}: {e}")
            return 2

    for stage, engine in settings.describe_engines().items():
        logger.info(f"{stage:>9}: {engine}")
    stages = ", ".join(stage.name for stage in pipeline.stages) or "none"
    logger.info(f" pipeline: {pipeline.name} ({stages})")
    missing = settings.missing_keys()
    if missing:
        logger.info("Not set: " + "; ".join(missing))
    if settings.is_development and not settings.kane_api_token and not settings.kane_jwt_secret:
        logger.warning("KANE_ENV=development and no credentials set: /connect is open")

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    # that was there before it; make that one a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings, pipeline),
        host=settings.kane_host,
        port=settings.port,
        log_level="warning",
        loop="uvloop",  # the playground's sessions run here; see session/host.py
        timeout_graceful_shutdown=15,
    )
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
