import subprocess
import sys
from pathlib import Path

import pytest
from pipecat.processors.aggregators.llm_context import LLMContext

from emotion.local import LocalEmotionAnalyzer
from processors.emotion import EmotionStage
from processors.partial_quests import PartialQuestDetector
from processors.stages import PipelineError, StageNeeds, build_stages, load_pipeline

ROOT = Path(__file__).resolve().parents[1]


def needs() -> StageNeeds:
    return StageNeeds(
        context=LLMContext(),
        user_id="ada",
        session_id="6f1c1f5e-8d2a-4b8e-9a57-3a2f4f0c1d11",
        quests=None,
        emotion_analyzers=lambda: [LocalEmotionAnalyzer()],
    )


def test_the_default_pipeline_names_kanes_stages_in_order():
    spec = load_pipeline()
    assert spec.name == "default"
    assert [s.name for s in spec.stages] == ["partial_quests", "emotion", "quest_edits"]
    stages = build_stages(spec, needs())
    # Without a quest store there is nothing to apply the phone's edits to.
    assert [type(s) for s in stages] == [PartialQuestDetector, EmotionStage]
    assert spec.describe()["stages"][1]["params"]["change_threshold"] == 0.25


def test_an_experiment_is_a_file():
    spec = load_pipeline(ROOT / "pipelines" / "no_emotion.toml")
    assert not any(isinstance(s, EmotionStage) for s in build_stages(spec, needs()))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('name = "x"\n[[stages]]\nname = "telepathy"\n', "unknown stage 'telepathy'"),
        ('name = "x"\n[[stages]]\nname = "emotion"\nparams = { bogus = 1 }\n', "bogus"),
        (
            'name = "x"\n[[stages]]\nname = "partial_quests"\nparams = { min_confidence = 7 }\n',
            "min_confidence",
        ),
        (
            'name = "x"\n[[stages]]\nname = "emotion"\nparams = { after_turn_s = -1 }\n',
            "after_turn_s",
        ),
        ('name = "x"\nsurprise = true\n', "surprise"),
        ("name = [not toml", "pipeline"),
    ],
)
def test_a_bad_pipeline_file_is_refused_with_what_is_wrong(tmp_path, text, complaint):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=complaint):
        load_pipeline(path)


def test_a_missing_pipeline_file_is_refused(tmp_path):
    with pytest.raises(PipelineError, match="nowhere.toml"):
        load_pipeline(tmp_path / "nowhere.toml")


def test_the_worker_refuses_to_start_with_a_bad_pipeline(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[[stages]]\nname = "telepathy"\n')
    done = subprocess.run(
        [sys.executable, "-m", "api", "--pipeline", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "telepathy" in done.stderr
