"""How experiments print: a line a phone message, quest lists, two runs side by side."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from experiments.compare import Draft, Outcome, QuestLine
from transport.file_records import SentMessage

WIDTH = 100
T = TypeVar("T")
_MAX_CELL = 60
_LABEL = 24


def message_line(message: SentMessage) -> str:
    """One line for a message to the phone: session time, type, the gist of its data."""
    return _clip(f"{message.at_s:8.2f}s  {message.type or message.topic:22} {gist(message)}")


def gist(message: SentMessage) -> str:
    """The gist of a message's data, short."""
    data = message.data
    kind = message.type
    if kind in ("partial_transcript", "final_transcript", "bot_response"):
        return json.dumps(data.get("text", ""), ensure_ascii=False)
    if kind == "quest_draft":
        retracted = " retracted" if data.get("retracted") else ""
        return (
            f"{json.dumps(data.get('title', ''), ensure_ascii=False)} {data.get('kind')} "
            f"{float(data.get('confidence', 0)):.2f}{retracted}"
        )
    if kind == "quest_created":
        quest = data.get("quest") or {}
        return f"{json.dumps(quest.get('title', ''), ensure_ascii=False)} {quest.get('kind')}"
    if kind == "quest_updated":
        return _compact(data.get("changes", {}))
    if kind == "success_criteria_set":
        return _compact(data.get("criteria", []))
    if kind == "bot_state":
        return str(data.get("state"))
    if kind == "emotion_changed":
        return (
            f"{data.get('label')} (valence {float(data.get('valence', 0)):+.2f}, "
            f"arousal {float(data.get('arousal', 0)):.2f})"
        )
    if kind == "tool_call":
        return f"{data.get('name')}({_compact(data.get('arguments', {}))})"
    if kind == "plan_draft":
        return f"{len(data.get('quests') or [])} planned quests"
    if kind == "session_started":
        return f"user {data.get('user_id')}"
    if kind == "session_ended":
        return str(data.get("reason"))
    if kind == "error":
        return f"{data.get('code')}: {data.get('message')}"
    return _compact(data) if data else _compact(message.payload)


def quest_lines(quests: Sequence[QuestLine]) -> list[str]:
    """The quests, one a line: kind, title, criteria."""
    if not quests:
        return ["  (no quests)"]
    return [_clip(f"  {q.kind:4}  {q.title}{_criteria(q)}") for q in quests]


def side_by_side(a: Outcome, b: Outcome, *, labels: tuple[str, str], out: TextIO) -> None:
    """Print two runs of one session side by side; what KANE did differently is marked `*`.

    Timing (when drafts showed, replies, speed) differs from run to run and is not marked.
    """
    # (label, left, right, whether what KANE did is the same; None for timing)
    rows: list[tuple[str, str, str, bool | None]] = []
    rows.append(("drafts", str(len(a.drafts)), str(len(b.drafts)), len(a.drafts) == len(b.drafts)))
    for i in range(max(len(a.drafts), len(b.drafts))):
        left, right = _at(a.drafts, i), _at(b.drafts, i)
        same = left is not None and right is not None and left.key() == right.key()
        rows.append(("", _draft(left), _draft(right), same))
    same_quests = a.same_quests(b)
    rows.append(("quests", "same" if same_quests else "different", "", same_quests))
    for i in range(max(len(a.quests), len(b.quests))):
        left_q, right_q = _at(a.quests, i), _at(b.quests, i)
        same = left_q is not None and right_q is not None and left_q.key() == right_q.key()
        rows.append(("", _quest(left_q), _quest(right_q), same))
    total_a, total_b = sum(a.counts.values()), sum(b.counts.values())
    rows.append(("messages by type", str(total_a), str(total_b), None))
    for kind in sorted(set(a.counts) | set(b.counts)):
        count_a, count_b = a.counts.get(kind, 0), b.counts.get(kind, 0)
        # Interim transcripts come as often as the STT keeps up: timing, not behaviour.
        alike = None if kind == "partial_transcript" else count_a == count_b
        rows.append((f"  {kind}", str(count_a), str(count_b), alike))
    emotions_a, emotions_b = " > ".join(a.emotions) or "-", " > ".join(b.emotions) or "-"
    rows.append(("emotion labels", emotions_a, emotions_b, a.emotions == b.emotions))
    rows.append(("turns", str(a.turns), str(b.turns), a.turns == b.turns))
    rows.append(("reply after turn (wall)", _ms_list(a.reply_ms), _ms_list(b.reply_ms), None))
    rows.append(("session time", f"{a.session_s:.1f} s", f"{b.session_s:.1f} s", None))
    rows.append(("wall time", f"{a.wall_s:.1f} s", f"{b.wall_s:.1f} s", None))
    rows.append(("speed", f"{a.speed:.1f}x real time", f"{b.speed:.1f}x real time", None))
    cells = [*labels, *(row[1] for row in rows)]
    width = min(max(len(cell) for cell in cells), _MAX_CELL)
    print(f"  {'':{_LABEL}}  {_fit(labels[0], width)}  {labels[1]}".rstrip(), file=out)
    for label, cell_a, cell_b, alike in rows:
        mark = "*" if alike is False else " "
        line = f"{mark} {_fit(label, _LABEL)}  {_fit(cell_a, width)}  {_fit(cell_b, _MAX_CELL)}"
        print(line.rstrip(), file=out)


@dataclass(frozen=True)
class SummaryRow:
    """One replayed session in the summary of many.

    Parameters:
        session_id: The session.
        started: When it was kept (text).
        a: Its run through its own pipeline; None when it could not be replayed.
        b: Its run through the other pipeline.
        note: Why it was not replayed, if it was not.
    """

    session_id: str
    started: str
    a: Outcome | None = None
    b: Outcome | None = None
    note: str = ""


def summary_table(rows: Sequence[SummaryRow], *, labels: tuple[str, str], out: TextIO) -> None:
    """Print one line a session: quests same or not, drafts, emotion messages, speed."""
    left, right = (_clip(label, 12) for label in labels)
    print(f"drafts, emotion messages and speed are given as {left} / {right}", file=out)
    print(
        f"{'session':8}  {'kept (UTC)':16}  {'quests':9}  {'drafts':>7}  {'emotions':>8}  "
        f"{'speed':>11}",
        file=out,
    )
    for row in rows:
        head = f"{row.session_id[:8]:8}  {row.started:16}"
        if row.a is None or row.b is None:
            print(_clip(f"{head}  skipped: {row.note}"), file=out)
            continue
        quests = "same" if row.a.same_quests(row.b) else "different"
        drafts = f"{len(row.a.drafts)}/{len(row.b.drafts)}"
        emotions = f"{row.a.counts['emotion_changed']}/{row.b.counts['emotion_changed']}"
        speed = f"{row.a.speed:.1f}/{row.b.speed:.1f}x"
        print(f"{head}  {quests:9}  {drafts:>7}  {emotions:>8}  {speed:>11}", file=out)
    replayed = [row for row in rows if row.a is not None and row.b is not None]
    different = sum(1 for row in replayed if row.a and row.b and not row.a.same_quests(row.b))
    print(
        f"{len(replayed)} replayed, {len(rows) - len(replayed)} skipped; "
        f"quests differ in {different}",
        file=out,
    )


class ProgressBar:
    """A progress bar on a stream: redrawn in place on a terminal, a line a step otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total: int) -> None:
        """Prepare a bar of `total` steps on `stream`."""
        self._stream = stream
        self._total = max(total, 1)
        self._tty = stream.isatty()

    def show(self, done: int, what: str) -> None:
        """Show `done` steps done, and what is being done now."""
        filled = done * self.WIDTH // self._total
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self._total} {what}"
        self._stream.write(f"\r{line:<78}" if self._tty else line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


def _at(items: Sequence[T], i: int) -> T | None:
    return items[i] if i < len(items) else None


def _draft(d: Draft | None) -> str:
    if d is None:
        return ""
    when = f" +{d.after_turn_ms}ms" if d.after_turn_ms is not None else ""
    gone = " (retracted)" if d.retracted else ""
    return f"{d.title} [{d.kind} {d.confidence:.2f}{when}]{gone}"


def _quest(q: QuestLine | None) -> str:
    if q is None:
        return ""
    return f"{q.title} [{q.kind}]{_criteria(q)}"


def _criteria(quest: QuestLine) -> str:
    return f" ✓ {'; '.join(quest.criteria)}" if quest.criteria else ""


def _ms_list(values: Sequence[int]) -> str:
    return ", ".join(f"{v} ms" for v in values) if values else "-"


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def _clip(text: str, width: int = WIDTH) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
