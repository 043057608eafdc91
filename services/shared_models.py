"""The ONNX models every session listens with, loaded once per process and shared.

Silero VAD and Smart Turn v3 each cost tens of milliseconds to load, and Pipecat loads them
again in every analyzer it builds, on the event loop that carries every other session's
audio. Here each model is one `onnxruntime.InferenceSession` for the whole process, loaded
the first time a session asks for it (or ahead of time by `preload_shared_models`).

Only the inference session is shared. What follows one audio stream stays per analyzer:
Silero's recurrent state and audio context, Smart Turn's buffered turn. An inference session
holds no state between runs. Silero VAD runs on the event loop (see
`SharedSileroVADAnalyzer.analyze_audio`); Smart Turn runs on the process's one turn-end
thread, in the order the turns ended (see `SharedSmartTurnAnalyzerV3`).

Each model runs on one thread, and so does the matrix product of Smart Turn's features
(numpy's OpenBLAS; see `_load_smart_turn_v3`): a process is one core's sessions.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import onnxruntime
from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.utils.env import env_truthy
from threadpoolctl import threadpool_limits

from services.process_threads import TURN_END, process_thread

_sessions: dict[str, onnxruntime.InferenceSession] = {}
_sessions_lock = threading.Lock()


def _model_file(package: str, name: str) -> str:
    return str(resources.files(package).joinpath(name))


def _load_silero_vad() -> onnxruntime.InferenceSession:
    # As `SileroOnnxModel` loads it: one thread, on the CPU.
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    providers = (
        ["CPUExecutionProvider"]
        if "CPUExecutionProvider" in onnxruntime.get_available_providers()
        else None
    )
    return onnxruntime.InferenceSession(
        _model_file("pipecat.audio.vad.data", "silero_vad.onnx"),
        providers=providers,
        sess_options=options,
    )


def _load_smart_turn_v3() -> onnxruntime.InferenceSession:
    # Smart Turn's log-mel features are a matrix product (numpy, OpenBLAS), at every turn's
    # end. OpenBLAS runs one on as many threads as there are cores, and after each its spare
    # threads spin, waiting for the next, for tens of milliseconds: ~55 ms of a core a call
    # on a 2-core VM (one thread: ~5 ms, no slower), taken from every session's event loop.
    # A process runs one core's sessions, so its BLAS runs on one thread, as the model's ONNX
    # does. For the whole process: the setting is OpenBLAS's, not a call's.
    threadpool_limits(limits=1, user_api="blas")
    # As `LocalSmartTurnAnalyzerV3` loads its bundled model with `cpu_count=1`.
    options = onnxruntime.SessionOptions()
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(
        _model_file("pipecat.audio.turn.smart_turn.data", "smart-turn-v3.2-cpu.onnx"),
        sess_options=options,
    )


_LOADERS: dict[str, Callable[[], onnxruntime.InferenceSession]] = {
    "silero_vad": _load_silero_vad,
    "smart_turn_v3": _load_smart_turn_v3,
}


def _shared_session(name: str) -> onnxruntime.InferenceSession:
    with _sessions_lock:
        session = _sessions.get(name)
        if session is None:
            logger.debug(f"shared_models: loading {name}")
            session = _sessions[name] = _LOADERS[name]()
            logger.debug(f"shared_models: loaded {name}")
        return session


def silero_vad_session() -> onnxruntime.InferenceSession:
    """Return the process's Silero VAD inference session, loading it on the first call."""
    return _shared_session("silero_vad")


def smart_turn_v3_session() -> onnxruntime.InferenceSession:
    """Return the process's Smart Turn v3 inference session, loading it on the first call."""
    return _shared_session("smart_turn_v3")


async def preload_shared_models() -> None:
    """Load the shared models on a worker thread, so no session's audio waits for them.

    Optional: without it the first session loads each model when it builds its analyzers.
    """
    await asyncio.to_thread(silero_vad_session)
    await asyncio.to_thread(smart_turn_v3_session)


class _SileroStreamModel(SileroOnnxModel):
    """`SileroOnnxModel` running a shared inference session; its state is its own."""

    def __init__(self, session: onnxruntime.InferenceSession):
        # Everything `SileroOnnxModel.__init__` sets, but the session is given, not loaded.
        self.session = session
        self.reset_states()
        self.sample_rates = [8000, 16000]


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """Silero VAD on the process's one Silero inference session.

    Behaves as `SileroVADAnalyzer`, whose methods it runs; the model's recurrent state, its
    audio context and the reset bookkeeping belong to this analyzer and its audio stream.
    """

    def __init__(
        self,
        *,
        session: onnxruntime.InferenceSession | None = None,
        sample_rate: int | None = None,
        params: VADParams | None = None,
    ):
        """Build the analyzer around a loaded session.

        Args:
            session: A Silero VAD inference session; the process's shared one if None.
            sample_rate: Audio sample rate (8000 or 16000 Hz); set later if None.
            params: VAD thresholds and timing.
        """
        # `SileroVADAnalyzer.__init__` would load the model again: set what it sets instead.
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = _SileroStreamModel(session or silero_vad_session())
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    @property
    def session(self) -> onnxruntime.InferenceSession:
        """The inference session this analyzer runs."""
        return self._model.session

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Score a frame of audio on the event loop itself, as it arrives.

        Pipecat hands every frame (50 a second a session) to a thread of the analyzer's own
        and waits for it. Silero costs ~0.14 ms a 20 ms frame; the hand-off costs more: the
        thread woken, the GIL taken from the loop and given back, the loop woken for the
        result, and under load each step waits for a core. Scored here, a worker of 24
        sessions on 2 cores used 14 points less of them and answered 25 ms sooner (p50; see
        BENCHMARKS.md). The states are the same as Pipecat's, frame for frame.

        Args:
            buffer: The frame's audio.

        Returns:
            The voice activity state after it.
        """
        return self._run_analyzer(buffer)


class SharedSmartTurnAnalyzerV3(LocalSmartTurnAnalyzerV3):
    """Smart Turn v3 on the process's one Smart Turn inference session and turn-end thread.

    Behaves as `LocalSmartTurnAnalyzerV3` with its bundled model; the buffered turn audio
    belongs to this analyzer. Pipecat runs each analyzer's model on a thread of the
    analyzer's own; here every analyzer of the process runs it on the process's turn-end
    thread (`services.process_threads.TURN_END`), turn after turn. A run is ~48 ms of a core
    on the benchmark's machine (8 s of audio, whatever the turn's length), and a turn ends
    when both it and the final transcript are in (there, the transcript comes ~150 ms after
    the run starts): with turns ending together, the first is not held back by the others.
    """

    def __init__(
        self,
        *,
        session: onnxruntime.InferenceSession | None = None,
        sample_rate: int | None = None,
        params: SmartTurnParams | None = None,
    ):
        """Build the analyzer around a loaded session.

        Args:
            session: A Smart Turn v3 inference session; the process's shared one if None.
            sample_rate: Audio sample rate; set when the pipeline starts if None.
            params: Smart Turn timing (`stop_secs`, `pre_speech_ms`, `max_duration_secs`).
        """
        # `LocalSmartTurnAnalyzerV3.__init__` would load the model again: set what it sets.
        BaseSmartTurn.__init__(self, sample_rate=sample_rate, params=params)
        self._log_data = env_truthy("PIPECAT_SMART_TURN_LOG_DATA", default=False)
        self._session = session or smart_turn_v3_session()

    @property
    def session(self) -> onnxruntime.InferenceSession:
        """The inference session this analyzer runs."""
        return self._session

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        """The process's turn-end thread (Pipecat's `analyze_end_of_turn` runs on it)."""
        return process_thread(TURN_END)


def build_vad_analyzer(params: VADParams | None = None) -> SharedSileroVADAnalyzer:
    """Silero VAD for one session's audio, on the process's shared model.

    Args:
        params: VAD thresholds and timing; Pipecat's defaults if None.
    """
    return SharedSileroVADAnalyzer(params=params)


def build_turn_analyzer(params: SmartTurnParams | None = None) -> SharedSmartTurnAnalyzerV3:
    """Smart Turn v3 for one session's turns, on the process's shared model.

    Args:
        params: Smart Turn timing; Pipecat's defaults if None.
    """
    return SharedSmartTurnAnalyzerV3(params=params)
