pytest_plugins = [
    "tests.support.postgres",
    "tests.support.livekit",
    "tests.support.speech",
    "tests.support.histories",
]
