"""A kept session rerun offline through the pipeline it ran with, and through another."""

from __future__ import annotations

from experiments.runs import RunResult, ScratchPostgres, offline, run_file_session
from experiments.stored import StoredSession
from processors.stages import PipelineSpec
from settings import Settings
from transport.file import FileTransport, FileTransportParams


class NotReplayable(ValueError):
    """A kept session without what a replay needs (its recording, or its transcripts)."""


def check_replayable(session: StoredSession, *, text: bool) -> None:
    """Make sure `session` can be replayed from its recording (or, with `text`, its words).

    Raises:
        NotReplayable: It cannot; the message says why.
    """
    if text:
        if not session.text_turns:
            raise NotReplayable(f"session {session.session_id} has no final transcripts")
    elif session.recording is None:
        if session.recording_url:
            raise NotReplayable(
                f"the recording of session {session.session_id} is not a file here: "
                f"{session.recording_url}"
            )
        raise NotReplayable(f"session {session.session_id} has no recording (try --text)")


async def replay_session(
    session: StoredSession,
    other: PipelineSpec,
    *,
    scratch: ScratchPostgres,
    settings: Settings,
    params: FileTransportParams | None = None,
    text: bool = False,
) -> tuple[RunResult, RunResult]:
    """Run a kept session through its own pipeline, then through `other`, offline.

    Each run has a scratch database of its own and starts from a person with no past:
    earlier quests and what KANE learned of them are not there, so the two runs compare
    with each other, not with the session as it went.

    Args:
        session: The kept session.
        other: The pipeline to compare with.
        scratch: Where the runs are kept meanwhile.
        settings: The worker's settings; every engine is made offline.
        params: Speed and when the person leaves.
        text: Replay the person's final transcripts instead of their recording.

    Raises:
        NotReplayable: The session lacks its recording (or, with `text`, its transcripts).
    """
    check_replayable(session, text=text)
    engines = offline(settings)
    runs = []
    # One after the other: two at once would share the CPU and slow each other down.
    for label, pipeline in (("own", session.pipeline), ("other", other)):
        transport = FileTransport(
            user_identity=session.user_id,
            audio=None if text else session.recording,
            text_turns=session.text_turns if text else None,
            params=params,
        )
        database = await scratch.open_database()
        try:
            runs.append(
                await run_file_session(
                    transport,
                    settings=engines,
                    pipeline=pipeline,
                    database=database,
                    data_dir=scratch.data_dir(f"{session.session_id}-{label}"),
                )
            )
        finally:
            await scratch.drop_database(database)
    return runs[0], runs[1]
