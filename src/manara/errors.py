"""Errors that users see: each has a stable `type` (used in problem+json) and an HTTP status."""

from __future__ import annotations

from typing import Any


class ManaraError(Exception):
    """Base of every error shown to a user. `type` is stable: clients may switch on it."""

    type = "about:blank"
    title = "Error"
    status = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return f"https://manara.ma/problems/{self.type}"

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotFound(ManaraError):
    type, title, status = "not-found", "Not found", 404


class DatasetNotFound(NotFound):
    type, title = "dataset-not-found", "Dataset not found"


class Conflict(ManaraError):
    type, title, status = "conflict", "Conflict", 409


class InvalidName(ManaraError):
    type, title, status = "invalid-name", "Invalid name", 422


class Unauthenticated(ManaraError):
    type, title, status = "unauthenticated", "Authentication required", 401


class InvalidToken(Unauthenticated):
    type, title = "invalid-token", "Invalid token"


class Forbidden(ManaraError):
    type, title, status = "forbidden", "Forbidden", 403


class IngestError(ManaraError):
    type, title, status = "ingest-failed", "Ingest failed", 422


class UnsupportedFormat(IngestError):
    type, title = "unsupported-format", "Unsupported file format"


class EncodingError(IngestError):
    type, title = "bad-encoding", "Wrong or mixed text encoding"


class MalformedFile(IngestError):
    type, title = "malformed-file", "Malformed file"


class EmptyFile(IngestError):
    type, title = "empty-file", "Empty file"


class SchemaMismatch(IngestError):
    type, title, status = "schema-mismatch", "Incompatible column type", 409


class UploadTooLarge(ManaraError):
    type, title, status = "upload-too-large", "Upload too large", 413


class IncompleteUpload(ManaraError):
    type, title, status = "incomplete-upload", "Incomplete upload", 400


class SqlRejected(ManaraError):
    type, title, status = "sql-rejected", "Query not allowed", 400


class SqlError(ManaraError):
    type, title, status = "sql-error", "Query failed", 400


class SqlTimeout(ManaraError):
    type, title, status = "sql-timeout", "Query took too long", 408


class BadRequest(ManaraError):
    type, title, status = "bad-request", "Bad request", 400


class DocumentUnreadable(IngestError):
    """A document that cannot be parsed: corrupt, encrypted, empty, or with no extractable text."""

    type, title = "document-unreadable", "Document cannot be read"


class CollectionNotFound(NotFound):
    type, title = "collection-not-found", "Collection not found"
