"""The partial-quest detector's rules: cues loaded from `quest_cues.toml`, and what they find.

`QuestCues.find_quests` reads one transcript (interim or final) and says which quests it
states, in order, each with a title, a kind, a confidence and whether it still stands. It
keeps no state: the detector calls it again as the words grow.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

DEFAULT_RULES = Path(__file__).with_name("quest_cues.toml")

Status = Literal["active", "retracted", "not_today", "question"]
PREVIOUS = -1  # `Found.replaces` / a correction's target: the last quest of the previous turn

_ROLES = {"quest", "sequence", "success", "correction", "not_today", "not_quest", "boundary"}
_TOKEN = re.compile(r"\w[\w'’\-]*|[.,!?;:…]")
_SENTENCE_END = {".", "!", "?", ";"}
_KIND_RANK = {"side": 0, "auto": 1, "main": 2}
_MAX_TITLE_WORDS = 12
_NOT_TODAY_REACH = 3  # words between "tomorrow" and the quest cue it still governs
# Words a criterion does not end on ("done when I can log in" keeps its "in").
_DANGLING = {"and", "or", "but", "so", "then", "the", "a", "an", "to", "of", "for", "with", "that"}


def compile_phrase(phrase: str) -> str:
    """Regex source for a phrase pattern such as ``"my main quest [today] [is|'s]"``.

    Each word consumes its trailing space; the text matched is lower-cased words joined by
    single spaces with a space at the end, so a match always ends on a word boundary.
    """
    parts = re.findall(r"\[[^\]]*\]|\([^)]*\)|[^\s\[(]+", phrase)
    out = []
    for part in parts:
        if part[0] in "[(":
            alts = sorted((a.strip() for a in part[1:-1].split("|")), key=len, reverse=True)
            group = "(?:" + "|".join(re.escape(a) + " " for a in alts if a) + ")"
            out.append(group + ("?" if part[0] == "[" else ""))
        else:
            out.append(re.escape(part) + " ")
    return "(?<![^ ])" + "".join(out)


@dataclass(frozen=True)
class Cue:
    """One rule of `quest_cues.toml`.

    Parameters:
        name: What the rule is called in the file.
        role: quest, sequence, success, correction, not_today, not_quest or boundary.
        patterns: Compiled patterns, one per phrase (or the rule's regex).
        kind: For quests: main, side or auto.
        mode: For corrections: retract, replace or trailing.
        weight: The confidence a quest gets from this cue.
    """

    name: str
    role: str
    patterns: tuple[re.Pattern[str], ...]
    kind: str = "side"
    mode: str = ""
    weight: float = 0.7


@dataclass(frozen=True)
class Words:
    """A transcript as words: fillers and stutters out, punctuation as words of its own.

    Parameters:
        text: The transcript as heard.
        spans: Where each word is in `text`.
        orig: Each word as heard.
        low: Each word lower-cased, with typographic apostrophes made plain.
        joined: `low` joined by spaces, with a space at the end; patterns run on it.
        starts: Where each word starts in `joined`.
    """

    text: str
    spans: list[tuple[int, int]]
    orig: list[str]
    low: list[str]
    joined: str
    starts: list[int]


@dataclass(frozen=True)
class Event:
    """Where a cue matched, in words: ``low[start:end]``."""

    start: int
    end: int
    cue: Cue


@dataclass
class Found:
    """A quest the words state.

    Parameters:
        key: Stable while the words grow: (where its cue starts, its place in the cue's list).
        title: The action, cleaned and capitalized.
        kind: main or side.
        confidence: 0 to 1.
        source_words: The words as heard, from the cue to the end of the action.
        status: active, or why it does not stand: retracted, not_today, question.
        replaces: The quest it replaces (an index into the list, or `PREVIOUS`).
    """

    key: tuple[int, int]
    title: str
    kind: str
    confidence: float
    source_words: str
    status: Status = "active"
    replaces: int | None = None
    start: int = 0
    end: int = 0
    sentence: int = 0


@dataclass
class Analysis:
    """What one transcript says about quests.

    Parameters:
        quests: In order of speech, those that do not stand included (with their status).
        retract_previous: The words take back the last quest of the previous turn.
    """

    quests: list[Found] = field(default_factory=list)
    retract_previous: bool = False


@dataclass
class Criterion:
    """A success criterion the words state.

    Parameters:
        text: What done looks like, as heard, capitalized ("New users can sign up").
        start: Where its success wording starts, in words.
        source_words: The words as heard, from the success wording to the criterion's end.
    """

    text: str
    start: int
    source_words: str


@dataclass
class _Carry:
    """A cue with no words of its own, lending its kind to the cue right after it."""

    start: int
    kind: str
    weight: float


class QuestCues:
    """The rules of `quest_cues.toml`, ready to read transcripts."""

    def __init__(self, data: dict) -> None:
        """Compile the rules.

        Args:
            data: The parsed TOML: ``cue`` tables and a ``words`` table.
        """
        self.cues: list[Cue] = []
        for raw in data["cue"]:
            if raw["role"] not in _ROLES:
                raise ValueError(f"cue {raw['name']!r}: unknown role {raw['role']!r}")
            sources = [compile_phrase(p) for p in raw.get("phrases", [])]
            if "regex" in raw:
                sources.append("(?<![^ ])(?:" + raw["regex"] + ")")
            self.cues.append(
                Cue(
                    name=raw["name"],
                    role=raw["role"],
                    patterns=tuple(re.compile(s) for s in sources),
                    kind=raw.get("kind", "side"),
                    mode=raw.get("mode", ""),
                    weight=float(raw.get("weight", 0.7)),
                )
            )
        words = data["words"]
        self.fillers = {tuple(f.split()) for f in words["fillers"]}
        self.like_kept_after = set(words["like_kept_after"])
        self.leading = sorted((tuple(w.split()) for w in words["leading"] if w), key=len)[::-1]
        self.trailing = set(words["trailing"])
        self.open_ended = set(words["open_ended"])
        self.joiners = {tuple(w.split()) for w in words["joiners"]}
        self.verbs = set(words["verbs"])

    @classmethod
    def load(cls, path: Path | str = DEFAULT_RULES) -> QuestCues:
        """Read and compile a rules file (cached: sessions share one copy)."""
        return _load(str(path))

    # Words

    def words(self, text: str) -> Words:
        """Split `text` into words, dropping fillers ("um", "like") and stutters ("I I")."""
        spans: list[tuple[int, int]] = []
        orig: list[str] = []
        low: list[str] = []
        tokens = [(m.group(), m.span()) for m in _TOKEN.finditer(text)]
        lows = [t.lower().replace("’", "'").replace("…", ".") for t, _ in tokens]
        i = 0
        while i < len(tokens):
            two = tuple(lows[i : i + 2])
            if len(two) == 2 and two in self.fillers:
                i += 2
                continue
            word = lows[i]
            if (word,) in self.fillers and not (
                word == "like" and low and low[-1] in self.like_kept_after
            ):
                i += 1
                continue
            if word == "," and (not low or low[-1] == ","):
                i += 1  # ", um," leaves one comma
                continue
            if low and word == low[-1] and word.isalnum():
                i += 1  # "I I need"
                continue
            if len(low) > 1 and low[-1] == "," and word == low[-2] and word.isalnum():
                spans.pop(), orig.pop(), low.pop()  # "to, to renew"
                i += 1
                continue
            spans.append(tokens[i][1])
            orig.append(tokens[i][0])
            low.append(word)
            i += 1
        starts, pos = [], 0
        for word in low:
            starts.append(pos)
            pos += len(word) + 1
        return Words(text, spans, orig, low, " ".join(low) + " ", starts)

    def is_verb(self, word: str) -> bool:
        """Whether `word` starts a task: a listed verb or its -ing form."""
        if word in self.verbs:
            return True
        if word.endswith("ing") and len(word) > 5:
            stem = word[:-3]
            return stem in self.verbs or stem + "e" in self.verbs or stem[:-1] in self.verbs
        return False

    def skip_leading(self, low: list[str], start: int, limit: int) -> int:
        """The first word at or after `start` that is not a lead-in ("to", "is", "I'll")."""
        i = start
        while i < limit:
            for lead in self.leading:
                if tuple(low[i : i + len(lead)]) == lead and i + len(lead) <= limit:
                    i += len(lead)
                    break
            else:
                return i
        return i

    def events(self, words: Words) -> list[Event]:
        """Every cue in the words; where two overlap, the earlier, then the longer, wins."""
        found = []
        for cue in self.cues:
            for pattern in cue.patterns:
                for m in pattern.finditer(words.joined):
                    start = bisect_left(words.starts, m.start())
                    end = bisect_left(words.starts, m.end())
                    if end > start:
                        found.append(Event(start, end, cue))
        found.sort(key=lambda e: (e.start, e.start - e.end))
        kept: list[Event] = []
        for event in found:
            if not kept or event.start >= kept[-1].end:
                kept.append(event)
        return kept

    # Quests

    def find_quests(
        self,
        text: str,
        *,
        final: bool = False,
        main_known: bool = False,
        has_previous: bool = False,
        previous_kind: str | None = None,
    ) -> Analysis:
        """The quests `text` states.

        Args:
            text: A transcript, interim or final.
            final: Whether the words are final; open-ended interim quests score lower.
            main_known: The session already has a main quest ("today I want to" is then side).
            has_previous: A quest of the previous turn can be corrected ("scratch that").
            previous_kind: That quest's kind, which a replacement takes over.

        Returns:
            The quests, in the order spoken.
        """
        words = self.words(text)
        low, n = words.low, len(words.low)
        sentence_of, sentence_end = [], [n] * (n + 1)
        sentence = 0
        for word in low:
            sentence_of.append(sentence)
            if word in _SENTENCE_END:
                sentence += 1
        for i in range(n - 1, -1, -1):
            sentence_end[i] = i if low[i] in _SENTENCE_END else sentence_end[i + 1]
        events = self._useful_events(words, sentence_end)

        result = Analysis()
        quests = result.quests
        carry: _Carry | None = None
        pending_replace: tuple[int, int] | None = None  # (target, sentence)
        pending_not_today: tuple[int, int] | None = None  # (end word, sentence)

        def target_before(at: int) -> int | None:
            for index in range(len(quests) - 1, -1, -1):
                if quests[index].status == "active" and quests[index].start < at:
                    return index
            return PREVIOUS if has_previous else None

        def retract(target: int) -> None:
            if target == PREVIOUS:
                result.retract_previous = True
            else:
                quests[target].status = "retracted"

        def add(start: int, limit: int, key_start: int, kind: str, weight: float) -> list[Found]:
            added = []
            for index, (a, b) in enumerate(self._items(low, start, limit)):
                title = self._title(words, a, b)
                if not title:
                    continue
                conf = weight * (0.9 if index else 1.0)
                conf -= 0.15 if len(title.split()) == 1 else 0.0
                conf -= 0.1 if not final and all(w == "," for w in low[b:]) else 0.0
                conf += 0.05 if final else 0.0
                source = words.text[words.spans[key_start][0] : words.spans[b - 1][1]]
                found = Found(
                    key=(key_start, index),
                    title=title,
                    kind=kind if index == 0 else "side",
                    confidence=conf,
                    source_words=source,
                    start=a,
                    end=b,
                    sentence=sentence_of[a],
                )
                quests.append(found)
                added.append(found)
            return added

        def replace_with(found: list[Found], at: int) -> None:
            nonlocal pending_replace
            if found and pending_replace and pending_replace[1] == sentence_of[at]:
                found[0].replaces = pending_replace[0]
                retract(pending_replace[0])
            pending_replace = None

        for k, event in enumerate(events):
            next_start = events[k + 1].start if k + 1 < len(events) else n
            limit = min(next_start, sentence_end[event.end] if event.end < n else n)
            role, cue = event.cue.role, event.cue
            body = self.skip_leading(low, event.end, limit)
            if role in ("quest", "sequence"):
                kind = cue.kind if role == "quest" else "side"
                start, weight = event.start, cue.weight
                if carry is not None:
                    start, weight = carry.start, max(weight, carry.weight)
                    kind = max(kind, carry.kind, key=_KIND_RANK.__getitem__)
                    carry = None
                if body >= limit:
                    if limit == next_start and k + 1 < len(events):
                        if events[k + 1].cue.role in ("quest", "sequence"):
                            carry = _Carry(start, kind, weight)
                    continue
                added = add(body, limit, start, kind, weight)
                if added and pending_not_today:
                    end, sent = pending_not_today
                    if sent == sentence_of[event.start] and event.start - end <= _NOT_TODAY_REACH:
                        added[0].status = "not_today"
                pending_not_today = None
                replace_with(added, event.start)
            elif role == "correction":
                target = target_before(event.start)
                if target is None:
                    continue
                if cue.mode == "trailing":
                    self._trailing(quests, target, event, words, retract, add)
                    continue
                if cue.mode == "retract":
                    retract(target)
                pending_replace = (target, sentence_of[min(event.end, n - 1)])
                if body < limit and self.is_verb(low[body]):
                    replace_with(add(body, limit, event.start, "side", 0.75), body)
            elif role == "not_today":
                pending_not_today = (event.end, sentence_of[event.start])
                follows = k + 1 < len(events) and events[k + 1].cue.role == "quest"
                if not (follows and events[k + 1].start - event.end <= _NOT_TODAY_REACH):
                    last = quests[-1] if quests else None
                    if last and last.sentence == sentence_of[event.start]:
                        if all(w == "," for w in low[last.end : event.start]):
                            last.status = "not_today"
            elif role == "success" and quests and quests[-1].end >= event.start - 1:
                quests[-1].confidence += 0.05  # a quest with a criterion is meant

        for found in quests:
            if sentence_end[found.start] < n and low[sentence_end[found.start]] == "?":
                found.status = "question"
        self._resolve_kinds(quests, main_known, previous_kind)
        for found in quests:
            found.confidence = round(min(1.0, max(0.0, found.confidence)), 2)
        return result

    def find_criteria(self, text: str) -> list[Criterion]:
        """The success criteria `text` states ("I'll know it's done when users can sign up").

        A criterion is the words after a success cue, up to the end of its sentence or the
        next cue that is not a "then" or "and" (a quest, a correction, a "because").

        Args:
            text: A transcript, interim or final.

        Returns:
            The criteria, in the order spoken.
        """
        words = self.words(text)
        low, n = words.low, len(words.low)
        events = [e for e in self.events(words) if e.cue.role != "sequence"]
        found = []
        for k, event in enumerate(events):
            if event.cue.role != "success":
                continue
            limit = events[k + 1].start if k + 1 < len(events) else n
            start = event.end
            while start < limit and (low[start] == "that" or not low[start][0].isalnum()):
                start += 1
            end = start
            while end < limit and low[end] not in _SENTENCE_END:
                end += 1
            while end > start and (low[end - 1] in _DANGLING or not low[end - 1][0].isalnum()):
                end -= 1
            if end <= start:
                continue
            said = " ".join(w for w in words.orig[start:end] if w != ",")
            source = words.text[words.spans[event.start][0] : words.spans[end - 1][1]]
            found.append(Criterion(said[0].upper() + said[1:], event.start, source))
        return found

    def _useful_events(self, words: Words, sentence_end: list[int]) -> list[Event]:
        """Cues that matter: a "then" or "and" only when an action or a quest cue follows.

        Success wording and non-quests ("I have to say") hold the rest of their sentence, so
        an "and" inside them starts nothing.
        """
        low, n = words.low, len(words.low)
        events = self.events(words)
        kept: list[Event] = []
        held_until = -1
        for k, event in enumerate(events):
            role = event.cue.role
            if role in ("success", "not_quest"):
                held_until = sentence_end[event.end] if event.end < n else n
            elif role == "sequence":
                if event.start < held_until:
                    continue
                nxt = events[k + 1].start if k + 1 < len(events) else n
                limit = min(nxt, sentence_end[event.end] if event.end < n else n)
                body = self.skip_leading(low, event.end, limit)
                if body < limit:
                    if not self.is_verb(low[body]):
                        continue
                elif not (body == nxt and k + 1 < len(events)):
                    continue
                elif events[k + 1].cue.role not in ("quest", "sequence"):
                    continue
            kept.append(event)
        return kept

    def _items(self, low: list[str], start: int, limit: int) -> list[tuple[int, int]]:
        """Split a quest's words into actions at commas followed by a verb.

        A comma followed by anything else ends the quest ("finish the deck, it's overdue"),
        unless it sits inside a phrase ("finish the, quarterly review").
        """
        items = []
        head = start
        i = start
        while i < limit:
            if low[i] == ",":
                j = i + 1
                while j < limit and (low[j] == "," or (low[j],) in self.joiners):
                    j += 1
                if j < limit and self.is_verb(low[j]) and i > head:
                    items.append((head, i))
                    head = i = j
                    continue
                if not (i > head and low[i - 1] in self.open_ended):
                    limit = i
                    break
            i += 1
        items.append((head, limit))
        return items

    def _title(self, words: Words, start: int, end: int) -> str:
        """The action as a card title: no commas or trailing "and the", capitalized, short."""
        low = words.low
        end = min(end, start + _MAX_TITLE_WORDS)
        while end > start and (low[end - 1] in self.trailing or not low[end - 1][0].isalnum()):
            end -= 1
        if end <= start:
            return ""
        title = " ".join(w for w in words.orig[start:end] if w != ",")
        return title[0].upper() + title[1:]

    def _trailing(
        self,
        quests: list[Found],
        target: int,
        event: Event,
        words: Words,
        retract: Callable[[int], None],
        add: Callable[[int, int, int, str, float], list[Found]],
    ) -> None:
        """A trailing "instead": the clause before it replaces the quest before that."""
        last = quests[-1] if quests else None
        if last is not None and last.end >= event.start - 1 and last.status == "active":
            if last.replaces is None:
                before = next(
                    (i for i in range(len(quests) - 2, -1, -1) if quests[i].status == "active"),
                    PREVIOUS if target == PREVIOUS else None,
                )
                if before is not None:
                    last.replaces = before
                    retract(before)
            return
        low = words.low
        clause = event.start
        while clause > 0 and low[clause - 1] not in _SENTENCE_END:
            clause -= 1
        body = self.skip_leading(low, clause, event.start)
        if body < event.start and self.is_verb(low[body]):
            added = add(body, event.start, clause, "side", 0.7)
            if added:
                added[0].replaces = target
                retract(target)

    @staticmethod
    def _resolve_kinds(quests: list[Found], main_known: bool, previous_kind: str | None) -> None:
        """Settle "auto" and replacements: a replacement takes over the main slot it frees."""
        explicit_main = any(q.kind == "main" and q.status == "active" for q in quests)
        main_taken = main_known
        for found in quests:
            if found.replaces is not None:
                replaced = previous_kind if found.replaces == PREVIOUS else None
                if found.replaces >= 0:
                    replaced = quests[found.replaces].kind
                if replaced == "main":
                    found.kind = "main"
                    main_taken = main_taken and found.replaces != PREVIOUS
            if found.kind == "auto":
                found.kind = "side" if main_taken or explicit_main else "main"
            if found.kind == "main" and found.status == "active":
                main_taken = True


@lru_cache(maxsize=8)
def _load(path: str) -> QuestCues:
    with open(path, "rb") as f:
        return QuestCues(tomllib.load(f))
