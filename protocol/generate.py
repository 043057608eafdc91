"""Write the protocol's JSON Schema and Swift types from the message models.

Usage::

    uv run python -m protocol.generate          # (re)write protocol/generated/
    uv run python -m protocol.generate --check  # exit 1 when the files there are stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from protocol.schema import protocol_schema
from protocol.swift import swift_source

GENERATED = Path(__file__).parent / "generated"
SCHEMA_FILE = GENERATED / "kane-protocol.schema.json"
SWIFT_FILE = GENERATED / "KaneProtocol.swift"


def render() -> dict[Path, str]:
    """Return the text of every generated file, by path."""
    schema = json.dumps(protocol_schema(), indent=2, ensure_ascii=False) + "\n"
    return {SCHEMA_FILE: schema, SWIFT_FILE: swift_source()}


def stale_files() -> list[Path]:
    """Return the generated files that are missing or differ from the models."""
    return [
        path
        for path, text in render().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the command.

    Args:
        argv: Command-line arguments, `sys.argv[1:]` when None.

    Returns:
        The exit status: 1 when `--check` finds stale files, else 0.
    """
    parser = argparse.ArgumentParser(prog="python -m protocol.generate", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files are stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (run `uv run python -m protocol.generate`)", file=sys.stderr)
        return 1 if stale else 0
    GENERATED.mkdir(parents=True, exist_ok=True)
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
