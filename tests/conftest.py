pytest_plugins = [
    "tests.support.network_guard",
    "tests.support.postgres",
    "tests.support.livekit",
    "tests.support.speech",
    "tests.support.histories",
]
