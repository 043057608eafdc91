"""The rules coach's planner: from the person's words to the quest tool calls they ask for.

What it understands of the words comes from the partial-quest detector's rules
(`processors/quest_cues.toml`): the quests stated, corrections and success criteria. Sentences
about a quest already on the list (make it the main one, it is done, drop it) it reads with
the patterns of `quests/coach_acts.py`, and it finds the quest they mean by its title's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from processors.quest_cues import PREVIOUS, Criterion, Found, QuestCues, Words
from quests.board import QuestBoard
from quests.coach_acts import Act, read_act
from storage.quests import MAX_CRITERIA, MAX_CRITERION, MAX_TITLE

_SENTENCE_END = {".", "!", "?", ";"}
# Words that point at a quest without naming it.
_POINTERS = {"it", "that", "this", "one", "last", "thing", "quest", "task", "item", "side"}


def minor_words(cues: QuestCues) -> set[str]:
    """Words that say nothing about which quest: "the", "my", "I'll", "today"...

    Args:
        cues: The cue rules, whose trailing and one-word leading words these include.

    Returns:
        The words, lower-cased.
    """
    minor = set(cues.trailing) | {lead[0] for lead in cues.leading if len(lead) == 1}
    return minor | {"you", "we", "please", "quest", "task"}


@dataclass
class PlanStep:
    """One thing the person's words ask for: a tool call, or only a line to say.

    Parameters:
        tool: The tool to call; None for a line only (`note`).
        args: Its arguments; an int ``quest_id`` is the place, among the plan's tool calls,
            of the call that creates the quest.
        quiet: Nothing to say about it (a create that a set_main right after announces).
        note: The template of a line-only step, filled with ``title``.
        title: The quest title a line-only step names.
    """

    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    note: str = ""
    title: str = ""


@dataclass
class _Sentence:
    """One sentence of the person's words, punctuation out.

    Parameters:
        start: Its first word.
        end: The word after its last (its full stop, say).
        kept: The words of `low`, by index into the whole.
        low: The words lower-cased, one space between.
        said: The words as heard, the same length as `low`.
    """

    start: int
    end: int
    kept: list[int]
    low: str
    said: str


class CoachPlanner:
    """Plans the quest tool calls a good model would make for the person's words."""

    def __init__(self, cues: QuestCues) -> None:
        """Create the planner.

        Args:
            cues: The cue rules it reads the person's words with.
        """
        self._cues = cues
        self._minor = minor_words(cues)

    def plan(
        self, text: str, board: QuestBoard, previous: dict[str, Any] | None, *, listed: bool
    ) -> list[PlanStep]:
        """The steps the words ask for, in the order spoken.

        Until the quests were listed, words about a quest it cannot find are kept (as "which
        one?"), so that it lists them first.

        Args:
            text: What the person said since the coach last spoke.
            board: The quests as the tool results tell them.
            previous: The quest the last turn changed, if any: what "it" and a correction
                point at.
            listed: Whether the quests were listed, this turn or before.

        Returns:
            The tool calls and lines, in order.
        """
        analysis = self._cues.find_quests(
            text,
            final=True,
            main_known=board.main_quest is not None,
            has_previous=previous is not None,
            previous_kind=previous.get("kind") if previous else None,
        )
        words = self._cues.words(text)
        plan = _Plan(self, board, previous)
        quests = [f for f in analysis.quests if f.status in ("active", "not_today")]
        criteria = self._cues.find_criteria(text)
        sentences = list(_sentences(words))
        acts: list[tuple[int, Act]] = []  # with the word each starts at
        for sentence in sentences:
            in_sentence = [f for f in quests if sentence.start <= f.start < sentence.end]
            if any(sentence.start <= c.start < sentence.end for c in criteria):
                continue
            # A correction's words may be a command ("actually, drop the bank call"), and so
            # may a sentence that starts with one ("mark the main quest done"); a quest
            # statement is not ("I need to cancel the gym membership").
            corrected = bool(in_sentence) and all(f.replaces is not None for f in in_sentence)
            act = read_act(sentence.low, sentence.said, plan.find, sure=corrected or not listed)
            if act is None:
                continue
            at = sentence.kept[act.at]
            first_cue = min((f.key[0] for f in in_sentence), default=sentence.end)
            if act.kind == "set_main" or at < first_cue or (corrected and act.target is not None):
                quests = [f for f in quests if f not in in_sentence]
                acts.append((at, act))
        if analysis.retract_previous and not any(f.replaces == PREVIOUS for f in quests):
            if not acts:
                plan.delete(plan.previous)
        items: list[tuple[int, Found | Criterion | Act]] = [
            *((f.start, f) for f in quests),
            *((c.start, c) for c in criteria),
            *acts,
        ]
        for at, item in sorted(items, key=lambda pair: pair[0]):
            plan.sentence = next((i for i, s in enumerate(sentences) if at < s.end), -1)
            if isinstance(item, Found):
                plan.quest(item)
            elif isinstance(item, Criterion):
                plan.criterion(item.text)
            else:
                plan.act(item)
        return plan.steps

    def keywords(self, text: str) -> set[str]:
        """The words of a title or a reference that tell quests apart, roughly stemmed.

        Args:
            text: A quest title, or what the person called a quest.

        Returns:
            Its telling words, lower-cased and stemmed.
        """
        words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("’", "'"))
        return {_stem(w) for w in words if w not in self._minor and w not in _POINTERS}


class _Plan:
    """The steps of one turn, and the quests as they will be once the steps are done."""

    def __init__(
        self, planner: CoachPlanner, board: QuestBoard, previous: dict[str, Any] | None
    ) -> None:
        self.steps: list[PlanStep] = []
        self._planner = planner
        # Quests by ref: an id, or the ref of the step that creates it.
        self._quests: dict[str | int, dict[str, Any]] = {
            qid: dict(quest) for qid, quest in board.quests.items()
        }
        main = board.main_quest
        self._main: str | int | None = str(main["id"]) if main else None
        self.previous: str | int | None = str(previous["id"]) if previous else None
        self._last: str | int | None = None  # the quest the words last named
        self._last_sentence = -1  # and in which sentence
        self.sentence = -1  # the sentence being planned

    def find(self, reference: str) -> str | int | None:
        """The quest that words such as "the bank call" or "the main one" point at."""
        words = set(reference.lower().split())
        if "main" in words:
            return self._main
        wanted = self._planner.keywords(reference)
        if not wanted:
            return self._last if self._last is not None else self.previous
        scored = sorted(
            (
                (len(wanted & self._planner.keywords(str(q.get("title", "")))), ref)
                for ref, q in self._quests.items()
            ),
            key=lambda pair: -pair[0],
        )
        if not scored or scored[0][0] * 2 < len(wanted) or scored[0][0] == 0:
            return None
        if len(scored) > 1 and scored[1][0] == scored[0][0]:
            return None  # two quests fit as well: ask rather than guess
        return scored[0][1]

    def quest(self, found: Found) -> None:
        """A quest the person stated: new, a correction, or one already on the list."""
        title = found.title[:MAX_TITLE]
        if found.status == "not_today":
            self._note("offline_not_today", title)
            return
        existing = self._same(title)
        if found.replaces == PREVIOUS and existing is None:
            target = self._main if found.kind == "main" and self._main is not None else None
            target = target if target is not None else self.previous
            if target is not None and target in self._quests:
                self._call("update_quest", target, title=title, confidence=found.confidence)
                self._quests[target]["title"] = title
                if found.kind == "main" and target != self._main:
                    self._set_main(target)
                self._named(target)
                return
        if existing is not None:
            if found.kind == "main" and existing != self._main:
                self._set_main(existing)
            else:
                self._note("offline_already", str(self._quests[existing].get("title", title)))
            self._named(existing)
            return
        self._create(title, found.kind, found.confidence)

    def criterion(self, text: str) -> None:
        """How the person will know a quest is done.

        For the quest named in the same sentence, else the main quest, else the last named.
        """
        target = self._last if self._last_sentence == self.sentence else None
        for fallback in (self._main, self._last):
            target = fallback if target is None else target
        if target is None:
            self._note("offline_criteria_first", "")
            return
        last = self.steps[-1] if self.steps else None
        criterion = text[:MAX_CRITERION]
        if last and last.tool == "set_success_criteria" and last.args["quest_id"] == target:
            last.args["criteria"] = (last.args["criteria"] + [criterion])[-MAX_CRITERIA:]
            return
        self._call("set_success_criteria", target, criteria=[criterion])

    def act(self, act: Act) -> None:
        """Set a quest as main, complete or delete it, by what the person called it."""
        target = act.target
        if act.kind == "set_main":
            if target is None:
                self._create(act.words[:1].upper() + act.words[1:MAX_TITLE], "main", None)
                return
            if target != self._main:
                self._set_main(target)
            self._named(target)
        elif target is None:
            self._note("offline_not_found", "")
        elif act.kind == "complete":
            self._call("complete_quest", target)
            self._drop(target)
        else:
            self.delete(target)

    def delete(self, target: str | int | None) -> None:
        """Remove a quest from today's list."""
        if target is not None and target in self._quests:
            self._call("delete_quest", target)
            self._drop(target)

    def _create(self, title: str, kind: str, confidence: float | None) -> None:
        sure: dict[str, Any] = {} if confidence is None else {"confidence": confidence}
        if kind == "main" and self._main is not None:
            # One main quest at a time: the new one comes in as a side quest, then takes over.
            ref = self._call("create_quest", None, title=title, kind="side", quiet=True, **sure)
            self._quests[ref] = {"title": title, "kind": "side"}
            self._set_main(ref)
        else:
            ref = self._call("create_quest", None, title=title, kind=kind, **sure)
            self._quests[ref] = {"title": title, "kind": kind}
            self._main = ref if kind == "main" else self._main
        self._named(ref)

    def _set_main(self, ref: str | int) -> None:
        self._call("set_main_quest", ref)
        if self._main is not None and self._main in self._quests:
            self._quests[self._main]["kind"] = "side"
        self._quests[ref]["kind"] = "main"
        self._main = ref

    def _named(self, ref: str | int) -> None:
        self._last, self._last_sentence = ref, self.sentence

    def _drop(self, ref: str | int) -> None:
        self._quests.pop(ref, None)
        self._main = None if ref == self._main else self._main
        self._last = None if ref == self._last else self._last
        self.previous = None if ref == self.previous else self.previous

    def _same(self, title: str) -> str | int | None:
        wanted = self._planner.keywords(title)
        for ref, quest in self._quests.items():
            if wanted and self._planner.keywords(str(quest.get("title", ""))) == wanted:
                return ref
        return None

    def _call(self, tool: str, quest: str | int | None, *, quiet: bool = False, **args: Any) -> int:
        ref = sum(1 for step in self.steps if step.tool)
        if quest is not None:
            args = {"quest_id": quest, **args}
        self.steps.append(PlanStep(tool=tool, args=args, quiet=quiet))
        return ref

    def _note(self, template: str, title: str) -> None:
        self.steps.append(PlanStep(note=template, title=title))


def _sentences(words: Words) -> Iterable[_Sentence]:
    """The sentences of `words`, punctuation left out."""
    start = 0
    for end in range(len(words.low) + 1):
        if end == len(words.low) or words.low[end] in _SENTENCE_END:
            kept = [i for i in range(start, end) if words.low[i][0].isalnum()]
            if kept:
                low = " ".join(words.low[i] for i in kept)
                said = " ".join(words.orig[i].replace("’", "'") for i in kept)
                yield _Sentence(start, end, kept, low, said)
            start = end + 1


def _stem(word: str) -> str:
    """Makes "calling", "calls" and "call" alike, and "writing" and "write"."""
    word = word.removesuffix("'s")
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2]:
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word
