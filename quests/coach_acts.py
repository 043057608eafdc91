"""Commands about a quest already on the list: make it the main one, it is done, drop it.

The rules coach's planner (`quests/coach_planner.py`) reads what the person says about new
quests with the partial-quest detector's cue rules; the sentences about quests already on the
list it reads with these patterns. Each names the quest in a group `ref`, which the planner
looks up by its title's words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Matched on one sentence, lower-cased, fillers and punctuation out.
_SET_MAIN = [
    r"\b(?:make|set) (?P<ref>.+?) (?:my|the) (?:main|top|first) (?:quest|one|thing|priority|task)",
    r"^(?:so |and |actually |no )*(?P<ref>.+?) (?:is|should be|will be) (?:my|the) "
    r"(?:main|top|first) (?:quest|one|thing|priority|task)(?: today| for today)?$",
    r"^(?:so |and |actually |no )*(?P<ref>.+?) (?:comes|goes) first$",
]
_COMPLETE = [
    r"\b(?:i|we|i've|we've|i have|we have) (?:just |already |finally |now )?(?:finished"
    r"|completed|wrapped up|knocked out|crossed off|checked off|ticked off) (?P<ref>.+)",
    r"\b(?:i'm|i am|we're|we are) (?:all |totally |now |finally )?(?:done|finished) with "
    r"(?P<ref>.+)",
    r"\b(?:mark|tick|check|cross) off (?P<ref>.+)",
    r"\b(?:mark|tick|check|cross) (?P<ref>.+?) (?:off|as done|as complete|as completed"
    r"|as finished|done|complete|completed)$",
    r"^(?:so |and |okay |ok )?(?P<ref>.+?)(?: is| are| was|'s) (?:now |all |finally )?"
    r"(?:done|finished|complete|completed)$",
    r"\b(?:i|we) (?:got|have) (?P<ref>.+?) done$",
]
_DELETE = [
    r"\b(?:delete|remove|drop|scrap|ditch|cancel|skip|forget about|forget|get rid of|strike"
    r"|cross out) (?P<ref>.+?)(?: (?:off|from) (?:the |my )?(?:list|board|quests))?$",
    r"\btake (?P<ref>.+?) off(?: (?:the |my )?(?:list|board|quests))?$",
    r"\b(?:i'm|i am|we're|we are) not (?:going to |gonna )?(?:do |doing )?(?P<ref>.+?)"
    r"(?: today| anymore| after all)?$",
    r"\b(?:i|we) (?:won't|will not|don't need to|do not need to|no longer need to"
    r"|don't have to) (?:do )?(?P<ref>.+?)(?: today| anymore| after all)?$",
]
_ACTS = [
    (act, re.compile(pattern))
    for act, patterns in (("set_main", _SET_MAIN), ("complete", _COMPLETE), ("delete", _DELETE))
    for pattern in patterns
]
# A sentence that says it is about the list.
_MENTIONS_LIST = re.compile(r"\b(?:quest|list|task)s?\b")


@dataclass
class Act:
    """A sentence about a quest on the list.

    Parameters:
        kind: set_main, complete or delete.
        target: The quest (an id or a plan step's ref); None when the words fit none.
        words: What the person called it, as heard.
        at: The word the command starts at, counted in the sentence's words.
    """

    kind: str
    target: str | int | None
    words: str
    at: int


def read_act(
    low: str, said: str, find: Callable[[str], str | int | None], *, sure: bool
) -> Act | None:
    """What a sentence asks of a quest on the list, if it is about one.

    Args:
        low: The sentence's words lower-cased, one space between, punctuation out.
        said: The same words as heard, the same length as `low`.
        find: The quest that words such as "the bank call" point at, if one fits.
        sure: Whether words that fit no quest are about the list all the same; when not,
            they are only if the sentence says so ("take the call off my list").

    Returns:
        The command, or None when the sentence is not about a quest on the list.
    """
    for kind, pattern in _ACTS:
        match = pattern.search(low)
        if match is None:
            continue
        act = Act(
            kind=kind,
            target=find(match.group("ref")),
            words=said[match.start("ref") : match.end("ref")],
            at=low[: match.start()].count(" "),
        )
        if act.target is None and kind != "set_main" and not sure:
            # "I finished the report" with no such quest: not about the list.
            return act if _MENTIONS_LIST.search(low) else None
        return act
    return None
