"""KANE's own costs in a pyinstrument profile: time spent in our modules, by function.

Two views. *Self*: time in our own lines. *Under*: a sampled frame's self time is charged to
the innermost frame of ours on its stack, so a Pydantic call made by the protocol module
counts against the protocol module (ours to avoid even when the CPU runs in a library); a
processor in direct mode also carries the frames it pushes on, as they run in its call.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

# Where our per-frame code lives (everything else of ours is reported too, apart).
FRAME_PATH = ("processors/", "tap/", "transport/", "services/", "session/", "protocol/", "storage/")


def our_costs(session: Any, *, root: Path, talk_s: float, top: int = 25) -> dict[str, Any]:
    """Our functions by CPU time charged to them in a pyinstrument session.

    Args:
        session: What `Profiler.stop()` returned.
        root: The repository (frames in files under it are ours; `.venv` is not).
        talk_s: Wall seconds the profile covers, to express costs as % of one core.
        top: How many functions to list.

    Returns:
        Total sampled time, ours, and the top functions with their share.
    """
    root_text = str(root) + "/"
    venv = str(root / ".venv")
    charged: dict[str, float] = defaultdict(float)
    by_module: dict[str, float] = defaultdict(float)
    own: dict[str, float] = defaultdict(float)
    total = 0.0

    def ours(frame: Any) -> str | None:
        path = frame.file_path or ""
        if not path.startswith(root_text) or path.startswith(venv):
            return None
        relative = path[len(root_text) :]
        if relative.startswith("bench/"):
            return None  # the benchmark's own stopwatch is not KANE
        return f"{relative}:{frame.function}"

    def walk(frame: Any, owner: str | None) -> None:
        nonlocal total
        here = ours(frame) or owner
        self_time = frame.total_self_time
        total += self_time
        if here is not None:
            charged[here] += self_time
            by_module[here.split(":", 1)[0]] += self_time
        if (name := ours(frame)) is not None:
            own[name] += self_time
        for child in frame.children:
            walk(child, here)

    root_frame = session.root_frame()
    if root_frame is not None:
        walk(root_frame, None)
    ours_total = sum(charged.values())
    on_frame_path = sum(t for name, t in charged.items() if name.startswith(FRAME_PATH))

    def pct(seconds: float) -> float:
        return round(100 * seconds / talk_s, 2) if talk_s else 0.0

    return {
        "sampled_s": round(total, 2),
        "ours_s": round(ours_total, 2),
        "ours_pct_of_core": pct(ours_total),
        "frame_path_pct_of_core": pct(on_frame_path),
        # Time in our own lines only (no library code they call, no frames pushed on).
        "self_pct_of_core": pct(sum(own.values())),
        "self_top_functions": [
            {"function": name, "seconds": round(t, 3), "pct_of_core": pct(t)}
            for name, t in sorted(own.items(), key=lambda item: -item[1])[:top]
        ],
        # Time under our functions: their own lines, the library code they call, and (for
        # processors in direct mode) the processing of the frames they push on.
        "top_functions": [
            {"function": name, "seconds": round(t, 3), "pct_of_core": pct(t)}
            for name, t in sorted(charged.items(), key=lambda item: -item[1])[:top]
        ],
        "by_module": [
            {"module": name, "seconds": round(t, 3), "pct_of_core": pct(t)}
            for name, t in sorted(by_module.items(), key=lambda item: -item[1])
        ],
    }


def self_time_by_file(session: Any, *, root: Path) -> dict[str, float]:
    """Self time of every sampled frame, by source file (ours relative to the repository,
    libraries relative to site-packages), to compare two profiles file by file."""
    root_text = str(root) + "/"
    totals: dict[str, float] = defaultdict(float)

    def name(path: str) -> str:
        if "site-packages/" in path:
            return path.split("site-packages/", 1)[1]
        if path.startswith(root_text):
            return path[len(root_text) :]
        return path.rsplit("/lib/python", 1)[-1] if "/lib/python" in path else path

    def walk(frame: Any) -> None:
        totals[name(frame.file_path or "<unknown>")] += frame.total_self_time
        for child in frame.children:
            walk(child)

    root_frame = session.root_frame()
    if root_frame is not None:
        walk(root_frame)
    return dict(totals)


def compare_files(
    kane: dict[str, float], bare: dict[str, float], *, kane_s: float, bare_s: float, top: int = 25
) -> list[dict[str, Any]]:
    """Files whose share of one core grew most from bare Pipecat to KANE."""
    rows: list[dict[str, Any]] = []
    for path in set(kane) | set(bare):
        k = 100 * kane.get(path, 0.0) / kane_s
        b = 100 * bare.get(path, 0.0) / bare_s
        rows.append({"file": path, "kane_pct": round(k, 2), "bare_pct": round(b, 2)})
    rows.sort(key=lambda row: row["bare_pct"] - row["kane_pct"])
    return rows[:top]
