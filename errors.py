"""The one exception family of renraku.

Each error carries a short machine code (stored with the record it explains), a Japanese reason for
the office staff, and an exit code for the command line. A bad *input* never crashes a batch: the
pipeline catches `InputError`, records the document or page with its reason and goes on.
"""

from __future__ import annotations


class RenrakuError(Exception):
    """Base of every error renraku raises on purpose."""

    code = "error"
    exit_code = 1

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code:
            self.code = code


class ConfigError(RenrakuError):
    """Settings, templates or rule lists that cannot be used."""

    code = "config"
    exit_code = 2


class TemplateError(ConfigError):
    """A sheet template or its derivation mapping is inconsistent."""

    code = "template"


class StorageError(RenrakuError):
    """The document store or the database refused an operation."""

    code = "storage"
    exit_code = 5


class InputError(RenrakuError):
    """A received document (or one of its pages) cannot be read; it is kept and recorded."""

    code = "unreadable"
    exit_code = 4


class UnsupportedInput(InputError):
    """A file type renraku does not read (yet): stored, recorded, shown to a person."""

    code = "unsupported"


class BrokenInput(InputError):
    """A file that claims a type but cannot be parsed (truncated, corrupt, encrypted)."""

    code = "broken"


class PermissionDenied(RenrakuError):
    """The person's role does not allow the action (a reviewer approving, an auditor correcting)."""

    code = "forbidden"
    exit_code = 3


class DecisionRefused(RenrakuError):
    """An application cannot be approved (open errors, unchecked fields) or a change cannot apply."""

    code = "refused"
    exit_code = 6


class RegistryImportError(RenrakuError):
    """A registry CSV with bad rows: nothing is imported, every bad row is named."""

    code = "registry_import"
    exit_code = 7

    def __init__(self, reason: str, problems: list[str]) -> None:
        super().__init__(reason)
        self.problems = problems
