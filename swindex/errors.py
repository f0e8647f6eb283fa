"""The exceptions swindex raises: each says what was wrong, where, and what to do."""

from __future__ import annotations


def shown(text: str) -> str:
    """Text made safe to print: anything unprintable
    (escape sequences, line breaks, invisible characters) written as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def shown_lines(text: str) -> str:
    """Text of several lines made safe to print: each line as `shown` writes it, the line breaks kept."""
    return "\n".join(shown(line) for line in str(text).split("\n"))


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A library's (often multi-line) error message as one line, for a message that must fit one."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SwindexError(Exception):
    """Base class for every error swindex raises on purpose."""


class RegistryFileError(SwindexError):
    """A registry file cannot be read or parsed; the message names the file and the line (and the field, when known)."""

    def __init__(self, path: object, message: str, line: int | None = None, field: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        self.field = field
        where = f"{shown(self.path)}:{line}" if line is not None else shown(self.path)
        super().__init__(f"{where}: {shown(message)}")


class ValidationError(SwindexError):
    """One or more entries break the schema or the registry's rules."""

    def __init__(self, problems: list) -> None:
        self.problems = list(problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s):\n{lines}")


class UnknownModelError(SwindexError, KeyError):
    """No registry entry matches the model; the message suggests the nearest ids."""

    def __init__(self, query: str, suggestions: list[str] | None = None) -> None:
        self.query = query
        self.suggestions = list(suggestions or [])
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        self.message = (
            f"no swindex entry for model {query!r}.{hint} "
            "Run `swindex list` to see every entry, or `swindex detect` to find its super weights."
        )
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class RevisionMismatchError(SwindexError):
    """An entry was recorded for another revision of the model than the one asked for."""


class UnsupportedModelError(SwindexError):
    """The model's architecture has no FFN down projection swindex can locate."""


class DetectionError(SwindexError):
    """Detection could not run to completion (load failure, numerical overflow, ...)."""


class ActivationOverflowError(DetectionError):
    """Activations became inf/nan (float16 overflow); reloading in bfloat16 or float32 fixes it."""


class VerificationError(SwindexError):
    """Verification could not measure what an entry claims."""


class FingerprintMismatchError(VerificationError):
    """The loaded weights differ from the values an entry records, so measurements of them are not evidence for it:
    recording them is refused (by `swindex.verification.record`, whichever front end asks)."""


class SurgeryError(SwindexError):
    """A super weight could not be changed or restored on a loaded model."""
