"""Storage: PostgreSQL (external or embedded), migrations, and the tables KANE writes."""

from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.migrations import MigrationError
from storage.sessions import SessionRecord, SessionStore

__all__ = ["Database", "EmbeddedPostgres", "MigrationError", "SessionRecord", "SessionStore"]
