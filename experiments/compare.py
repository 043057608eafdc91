"""What a run came to, in the terms two runs are compared by."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from experiments.runs import RunResult
from transport.file_records import SentMessage, UserTurn


@dataclass(frozen=True)
class Draft:
    """A draft quest card as it ended up, and when it first showed.

    Parameters:
        title: Its last title.
        kind: Its last kind, main or side.
        confidence: Its last confidence.
        after_turn_ms: When it first showed, in ms after its turn started (session time).
        retracted: The person took it back.
    """

    title: str
    kind: str
    confidence: float
    after_turn_ms: int | None
    retracted: bool

    def key(self) -> tuple[str, str, float, bool]:
        """What makes two drafts the same (when they showed aside)."""
        return (self.title.casefold(), self.kind, round(self.confidence, 2), self.retracted)


@dataclass(frozen=True)
class QuestLine:
    """A quest the run left the person with."""

    title: str
    kind: str
    criteria: tuple[str, ...]

    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """What makes two quests the same: kind, title and criteria, case aside."""
        return (self.kind, self.title.casefold(), tuple(c.casefold() for c in self.criteria))


@dataclass(frozen=True)
class Outcome:
    """One run, summed up.

    Parameters:
        drafts: Draft cards, in the order they first showed.
        quests: The quests at the end, main first, then by title.
        counts: Messages sent to the phone, by type.
        emotions: The labels of the `emotion_changed` messages, in order.
        turns: The person's turns.
        reply_ms: For each answered turn, ms (wall) from its end until KANE spoke.
        session_s: Session time the run covered.
        wall_s: Wall time it took.
    """

    drafts: list[Draft]
    quests: list[QuestLine]
    counts: Counter[str]
    emotions: list[str]
    turns: int
    reply_ms: list[int]
    session_s: float
    wall_s: float

    @property
    def speed(self) -> float:
        """How many times faster than real time the run went (session time over wall)."""
        return self.session_s / self.wall_s if self.wall_s > 0 else 0.0

    def same_quests(self, other: Outcome) -> bool:
        """Whether both runs left the person with the same quests."""
        return sorted(q.key() for q in self.quests) == sorted(q.key() for q in other.quests)


def outcome(run: RunResult) -> Outcome:
    """Sum up a run."""
    messages = [m for m in run.messages if m.type is not None]
    quests = sorted(
        (QuestLine(q.title, q.kind, tuple(q.success_criteria)) for q in run.quests),
        key=lambda q: (q.kind != "main", q.title.casefold()),
    )
    return Outcome(
        drafts=_drafts(messages, run.turns),
        quests=quests,
        counts=Counter(m.type for m in messages if m.type),
        emotions=[str(m.data.get("label")) for m in messages if m.type == "emotion_changed"],
        turns=len(run.turns),
        reply_ms=_reply_ms(messages, run.turns),
        session_s=run.session_s,
        wall_s=run.wall_s,
    )


def _drafts(messages: list[SentMessage], turns: list[UserTurn]) -> list[Draft]:
    first_seen: dict[str, float] = {}
    last: dict[str, dict] = {}
    for message in messages:
        if message.type != "quest_draft":
            continue
        draft_id = str(message.data.get("draft_id", ""))
        first_seen.setdefault(draft_id, message.at_s)
        last[draft_id] = message.data
    drafts = []
    for draft_id, at_s in first_seen.items():
        data = last[draft_id]
        turn = _turn_at(turns, at_s)
        drafts.append(
            Draft(
                title=str(data.get("title", "")),
                kind=str(data.get("kind", "")),
                confidence=float(data.get("confidence", 0.0)),
                after_turn_ms=round((at_s - turn.started_s) * 1000) if turn else None,
                retracted=bool(data.get("retracted", False)),
            )
        )
    return drafts


def _turn_at(turns: list[UserTurn], at_s: float) -> UserTurn | None:
    """The latest turn that started by `at_s`."""
    started = [turn for turn in turns if turn.started_s <= at_s]
    return started[-1] if started else None


def _reply_ms(messages: list[SentMessage], turns: list[UserTurn]) -> list[int]:
    """Per answered turn, wall ms from the turn's end until KANE started speaking."""
    speaking = [m for m in messages if m.type == "bot_state" and m.data.get("state") == "speaking"]
    replies = []
    for i, turn in enumerate(turns):
        if turn.stopped_s is None or turn.stopped_wall_s is None:
            continue
        next_turn = turns[i + 1].started_s if i + 1 < len(turns) else float("inf")
        spoke = next((m for m in speaking if turn.stopped_s <= m.at_s < next_turn), None)
        if spoke is not None:
            replies.append(round((spoke.wall_s - turn.stopped_wall_s) * 1000))
    return replies
