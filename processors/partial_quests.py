"""Partial-quest detector: draft quest cards from the person's words while they still speak."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import Frame, InterimTranscriptionFrame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pydantic import BaseModel, Field

from frames.quests import QuestDraftFrame, QuestKind
from processors.quest_cues import DEFAULT_RULES, Analysis, Found, QuestCues

_WORD = re.compile(r"\w+")


class PartialQuestParams(BaseModel):
    """Settings of the partial-quest detector.

    Parameters:
        rules_path: The cue rules (TOML); `processors/quest_cues.toml` by default.
        min_confidence: Drafts below this are not sent.
        min_interim_words: Words an interim draft's title needs before it is sent
            ("Call" waits for "Call the dentist"); a final sends shorter ones.
        confidence_step: A change of confidence alone is sent when at least this large.
    """

    rules_path: Path = DEFAULT_RULES
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    min_interim_words: int = Field(default=2, ge=1)
    confidence_step: float = Field(default=0.1, ge=0.0)


@dataclass
class _Draft:
    """A draft as the phone knows it, and what it was last sent as."""

    draft_id: str
    key: tuple[int, int]
    title: str = ""
    kind: QuestKind = "side"
    confidence: float = 0.0
    source_words: str = ""
    live: bool = True
    closed: bool = False  # a final transcript carried it
    sent: tuple[str, str, float, bool] | None = None  # title key, kind, confidence, retracted


class PartialQuestDetector(FrameProcessor):
    """Turns interim and final transcripts into `QuestDraftFrame`s.

    Sits between STT and the user context aggregator. Every frame passes through unchanged;
    a transcript's drafts follow right after it. Each interim transcript (the words of the
    current STT segment so far) is read again in full by the rules of `quest_cues.toml`, and
    its quests are matched to the drafts already sent, so a draft keeps its `draft_id` while
    its words grow. A draft is sent when it first stands, then only when its title words,
    kind or confidence (by `confidence_step`) change, and with ``retracted=True`` when it no
    longer stands ("scratch that", "actually...", "... tomorrow", the words were revised).

    A final transcript closes the segment: its drafts are sent once more with
    ``from_final=True`` and the next interims start fresh. Two things outlive a segment:
    whether the session has a main quest (then "today I want to" drafts a side quest), and the
    segment's last draft, which a correction opening the next segment ("Actually, first fix
    the login bug") retracts and whose kind its replacement takes over.

    Success wording ("I'll know it's done when...") drafts nothing: it is a criterion, not a
    quest. It ends the quest's title before the criterion and adds a little confidence to the
    quest it follows; setting criteria is left to the LLM's quest tools.
    """

    def __init__(self, *, params: PartialQuestParams | None = None, **kwargs):
        """Load the rules.

        Args:
            params: Detector settings; defaults when omitted.
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._params = params or PartialQuestParams()
        self._cues = QuestCues.load(self._params.rules_path)
        self._drafts: list[_Draft] = []  # the current segment's, in order of speech
        self._previous: _Draft | None = None  # the last draft of the previous segment
        self._main_id: str | None = None  # the session's main quest, once a final carried it

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass every frame on; after a transcript, push the drafts it changed."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, InterimTranscriptionFrame):
            final = False
        elif isinstance(frame, TranscriptionFrame):
            final = True
        else:
            return
        try:
            drafts = self.read(frame.text, final=final)
        except Exception as e:  # a rule bug must not end the session
            await self.push_error(f"{self}: could not read transcript: {e}", exception=e)
            return
        for draft in drafts:
            await self.push_frame(draft)

    def read(self, text: str, *, final: bool) -> list[QuestDraftFrame]:
        """Read a transcript of the current segment; the drafts to send, in order.

        Args:
            text: The segment's words so far (interim) or for good (final).
            final: Whether this transcript closes the segment.
        """
        previous = self._previous
        analysis = self._cues.find_quests(
            text,
            final=final,
            main_known=self._main_id is not None,
            has_previous=previous is not None,
            previous_kind=previous.kind if previous else None,
        )
        drafts, gone = self._match(analysis.quests)
        out: list[QuestDraftFrame] = []
        if previous is not None:
            previous.live = not analysis.retract_previous
            out.extend(self._changes(previous, final))
        for draft in gone:
            draft.live = False
            out.extend(self._changes(draft, final))
        for draft in drafts:
            draft.closed = final
            out.extend(self._changes(draft, final))
        if final:
            self._close(drafts, analysis)
        else:
            self._drafts = drafts
        return out

    def _match(self, quests: list[Found]) -> tuple[list[_Draft], list[_Draft]]:
        """Give each quest the draft it continues (same cue, else same words), or a new one."""
        unused = {draft.key: draft for draft in self._drafts}
        drafts = []
        for quest in quests:
            draft = unused.pop(quest.key, None)
            if draft is None:
                draft = next(
                    (d for d in unused.values() if _same_words(d.title, quest.title)), None
                )
                if draft is not None:
                    del unused[draft.key]
            if draft is None:
                draft = _Draft(draft_id=uuid.uuid4().hex, key=quest.key)
            draft.key = quest.key
            draft.title = quest.title
            draft.kind = "main" if quest.kind == "main" else "side"
            draft.confidence = quest.confidence
            draft.source_words = quest.source_words
            draft.live = quest.status == "active"
            drafts.append(draft)
        return drafts, list(unused.values())

    def _changes(self, draft: _Draft, final: bool) -> list[QuestDraftFrame]:
        """The frame that brings the phone up to date with `draft`, if it needs one."""
        params = self._params
        key = " ".join(_WORD.findall(draft.title.lower()))
        stands = draft.live and draft.confidence >= params.min_confidence
        if stands and (final or draft.closed or len(key.split()) >= params.min_interim_words):
            sent = draft.sent
            changed = (
                sent is None
                or sent[3]
                or sent[0] != key
                or sent[1] != draft.kind
                or abs(sent[2] - draft.confidence) >= params.confidence_step
            )
            if not (changed or final):
                return []
            draft.sent = (key, draft.kind, draft.confidence, False)
            return [self._frame(draft, final, retracted=False)]
        if draft.sent is not None and not draft.sent[3]:
            draft.sent = (draft.sent[0], draft.sent[1], draft.sent[2], True)
            return [self._frame(draft, final, retracted=True)]
        return []

    def _frame(self, draft: _Draft, final: bool, *, retracted: bool) -> QuestDraftFrame:
        logger.debug(
            f"{self}: draft {draft.draft_id[:8]} {draft.kind} {draft.title!r} "
            f"{draft.confidence:.2f}{' retracted' if retracted else ''}{' final' if final else ''}"
        )
        return QuestDraftFrame(
            draft_id=draft.draft_id,
            title=draft.title,
            kind=draft.kind,
            confidence=draft.confidence,
            source_words=draft.source_words,
            retracted=retracted,
            from_final=final or draft.closed,
        )

    def _close(self, drafts: list[_Draft], analysis: Analysis) -> None:
        """End the segment: remember the session's main quest and the last draft standing."""
        previous = self._previous
        if previous is not None and not previous.live and previous.draft_id == self._main_id:
            self._main_id = None
        standing = [d for d in drafts if d.live and d.sent is not None]
        for draft in standing:
            if draft.kind == "main":
                self._main_id = draft.draft_id
        if standing:
            self._previous = standing[-1]
        elif analysis.retract_previous or analysis.quests:
            self._previous = None
        self._drafts = []


def _same_words(a: str, b: str) -> bool:
    """Whether two titles share most words: the same draft, revised by the STT."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return False
    return len(wa & wb) / min(len(wa), len(wb)) >= 0.5
