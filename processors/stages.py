"""KANE's stages by name, and pipelines of them read from TOML files.

A pipeline file names the processors that run between speech to text and the language model,
in order, with their params:

    name = "default"
    [[stages]]
    name = "emotion"
    params = { change_threshold = 0.25 }

so trying "no emotion stage" or another detector is a change of file, not of code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emotion.analyzer import EmotionAnalyzer
from processors.emotion import EmotionParams, EmotionStage
from processors.partial_quests import PartialQuestDetector, PartialQuestParams
from processors.quest_edits import QuestEditApplier, QuestEditParams
from storage.quests import QuestStore

DEFAULT_PIPELINE = Path(__file__).resolve().parent.parent / "pipelines" / "default.toml"


@dataclass(frozen=True)
class StageNeeds:
    """What a session offers the stages it builds.

    Parameters:
        context: The session's LLM context.
        user_id: The session's person.
        session_id: The session.
        quests: The quest store, or None when nothing is stored.
        emotion_analyzers: Makes the session's emotion analyzers.
    """

    context: LLMContext
    user_id: str
    session_id: str
    quests: QuestStore | None
    emotion_analyzers: Callable[[], list[EmotionAnalyzer]]


@dataclass(frozen=True)
class Stage:
    """A registered stage: its params class, and how a session builds it."""

    params: Callable[..., Any]
    build: Callable[[StageNeeds, Any], FrameProcessor | None]


def _quest_edits(needs: StageNeeds, params: QuestEditParams) -> FrameProcessor | None:
    if needs.quests is None:
        return None  # nothing to apply edits to
    return QuestEditApplier(
        store=needs.quests,
        user_id=needs.user_id,
        session_id=needs.session_id,
        context=needs.context,
        params=params,
    )


STAGES: dict[str, Stage] = {
    "partial_quests": Stage(
        PartialQuestParams, lambda needs, params: PartialQuestDetector(params=params)
    ),
    "emotion": Stage(
        EmotionParams,
        lambda needs, params: EmotionStage(
            analyzers=needs.emotion_analyzers(), context=needs.context, params=params
        ),
    ),
    "quest_edits": Stage(QuestEditParams, _quest_edits),
}


class PipelineError(ValueError):
    """A pipeline file that cannot be used; the message names the file and what is wrong."""


class StageSpec(BaseModel):
    """One stage of a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; known: {', '.join(sorted(STAGES))}")
        return name


class PipelineSpec(BaseModel):
    """A named pipeline: the stages between STT and the LLM, in order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    stages: list[StageSpec] = Field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """What a session records of the pipeline it ran with."""
        return {"name": self.name, "stages": [s.model_dump() for s in self.stages]}


def load_pipeline(path: Path | str = DEFAULT_PIPELINE) -> PipelineSpec:
    """Read and check a pipeline file, building each stage once to check its params.

    Raises:
        PipelineError: The file is missing, not TOML, or names an unknown stage or param.
    """
    path = Path(path)
    try:
        spec = PipelineSpec.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as e:
        raise PipelineError(f"pipeline {path}: {e}") from e
    for stage in spec.stages:
        try:
            STAGES[stage.name].params(**stage.params)
        except (TypeError, ValidationError) as e:
            raise PipelineError(f"pipeline {path}: stage {stage.name!r}: {e}") from e
    return spec


def build_stages(spec: PipelineSpec, needs: StageNeeds) -> list[FrameProcessor]:
    """The processors of a pipeline, in order, for one session."""
    built = []
    for spec_stage in spec.stages:
        stage = STAGES[spec_stage.name]
        processor = stage.build(needs, stage.params(**spec_stage.params))
        if processor is not None:
            built.append(processor)
    return built
