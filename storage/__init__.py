"""Storage: PostgreSQL (external or embedded), migrations, and the tables KANE writes."""

from storage.conversations import ConversationRecord, ConversationStore
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.journal import JournalEvent, JournalStats, JournalWriter
from storage.migrations import MigrationError
from storage.sessions import SessionRecord, SessionStore

__all__ = [
    "ConversationRecord",
    "ConversationStore",
    "Database",
    "EmbeddedPostgres",
    "JournalEvent",
    "JournalStats",
    "JournalWriter",
    "MigrationError",
    "SessionRecord",
    "SessionStore",
]
