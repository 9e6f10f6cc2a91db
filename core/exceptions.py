"""Domain errors. Services raise them; the API turns them into 400 and the admin into a message."""


class DomainError(Exception):
    """A business rule refused the request. `code` is stable for API clients."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
