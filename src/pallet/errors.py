"""Error categories.

Every error pallet raises for a user's mistake or an engine failure subclasses
:class:`PalletError`.  The CLI prints ``str(err)`` as one line on stderr and
exits with ``err.exit_code`` (125, Docker's code for an engine error, unless a
subclass says otherwise).  Messages read like Docker's.
"""

from __future__ import annotations


class PalletError(Exception):
    """Base of every error pallet reports to a user."""

    exit_code: int = 125

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# -- categories -------------------------------------------------------------


class NotFound(PalletError):
    """Something named by the user does not exist."""


class Conflict(PalletError):
    """The request conflicts with the current state (name in use, image in use...)."""


class InvalidArgument(PalletError):
    """A flag, reference or value is malformed."""


class InvalidData(PalletError):
    """Input data (an archive, a manifest, a blob) is corrupt or hostile."""


class Unavailable(PalletError):
    """A needed host feature, tool or remote service is not available."""


class RuntimeFailure(PalletError):
    """The OCI runtime failed to create or run a container."""


class Unauthorized(PalletError):
    """A registry refused our credentials."""


# -- specific errors ----------------------------------------------------------


class ImageNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")
        self.ref = ref


class ContainerNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such container: {name}")
        self.name = name


class VolumeNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such volume: {name}")
        self.name = name


class NetworkNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"network {name} not found")
        self.name = name


class BlobNotFound(NotFound):
    def __init__(self, digest: str) -> None:
        super().__init__(f"blob unknown: {digest}")
        self.digest = digest


class InvalidReference(InvalidArgument):
    def __init__(self, ref: str, why: str = "invalid reference format") -> None:
        super().__init__(f"{why}: {ref!r}" if ref else why)
        self.ref = ref


class DigestMismatch(InvalidData):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class UnsafeArchive(InvalidData):
    """A tar entry would land outside its target, or is not allowed."""

    def __init__(self, entry: str, why: str) -> None:
        super().__init__(f"refusing archive entry {entry!r}: {why}")
        self.entry = entry
        self.why = why


class NameInUse(Conflict):
    def __init__(self, kind: str, name: str, owner_id: str = "") -> None:
        tail = f" by {kind} {owner_id!r}" if owner_id else ""
        super().__init__(
            f'Conflict. The {kind} name "{name}" is already in use{tail}. '
            f"You have to remove (or rename) that {kind} to be able to reuse that name."
        )
        self.name = name


class CommandNotFound(PalletError):
    """The container's command does not exist (Docker: exit 127)."""

    exit_code = 127


class CommandCannotRun(PalletError):
    """The container's command exists but cannot be executed (Docker: exit 126)."""

    exit_code = 126
