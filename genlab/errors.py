"""Every error genlab raises on purpose, in one tree.

    GenlabError                 a user can fix it; the CLI prints it in one line
    ├── ConfigError             bad model spec, missing key, bad option or schema
    │   ├── UnknownResponse     feedback names a reply genlab never recorded (404 in serve)
    │   ├── SpecError           a FunSearch spec file is malformed
    │   ├── SuiteError          an evaluation suite file is malformed
    │   └── UserCodeError       a suite's python check raised, or returned no score
    ├── BudgetExceeded          the run's USD or token budget is spent
    ├── StoreError              a SQLite file of genlab's cannot be read or written
    ├── ModelError              the model (or the endpoint behind it) failed the call
    │   ├── ModelUnreachable    no answer: connection refused, DNS, timeout
    │   ├── RequestRejected     the endpoint answered 4xx (bad key, unknown model…)
    │   └── VerdictUnreadable   a judge's reply is not the verdict asked for (kept in ``raw``)
    └── ApiError                what `genlab serve` refuses itself (limits, key, Host, a full queue)

Each is translated once at each boundary: the CLI prints it in one line, `genlab serve`
answers with it in OpenAI's envelope (``http_status``, ``error_type``, ``code``, ``param``).
Anything else that escapes is a bug: the CLI lets it raise when GENLAB_DEBUG is set.
Foreign errors (openai, xllamacpp, sqlite) are translated where they enter genlab,
with ``raise … from exc`` so the cause stays visible to a debugger.
"""

from __future__ import annotations


class GenlabError(Exception):
    """A problem the user can fix. The message names the problem and the fix."""

    #: HTTP status `genlab serve` answers with when this error reaches it.
    http_status = 400
    #: OpenAI error ``type`` for the server's error envelope.
    error_type = "invalid_request_error"
    #: OpenAI error ``code``.
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class ConfigError(GenlabError):
    """A model spec, option, schema or setting is wrong."""


class BudgetExceeded(GenlabError):
    """The run's budget (USD or tokens) would be exceeded by another call."""

    http_status = 429
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class UnknownResponse(ConfigError):
    """Feedback names a reply genlab never recorded."""

    http_status = 404
    code = "response_not_found"


class SpecError(ConfigError):
    """A spec file is malformed; the message names the file and the fix."""


class SuiteError(ConfigError):
    """A suite file is malformed; the message names the file, line and key."""


class UserCodeError(ConfigError):
    """A suite's own Python check raised, or returned what is not a score: that assertion's
    error on that row (the run goes on)."""


class StoreError(GenlabError):
    """A SQLite file of genlab's (store, notebook, run) cannot be opened, read or written."""

    http_status = 500
    error_type = "server_error"


class ModelError(GenlabError):
    """The model or its endpoint failed the call."""

    http_status = 502
    error_type = "api_error"


class ModelUnreachable(ModelError):
    """The endpoint did not answer (refused, unknown host, timed out)."""

    http_status = 503


class RequestRejected(ModelError):
    """The endpoint answered with a client error; ``status`` is its HTTP status."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None):
        super().__init__(message, param=param)
        self.http_status = status
        self.error_type = {401: "authentication_error", 404: "not_found_error",
                           429: "rate_limit_error"}.get(status, "invalid_request_error")


class VerdictUnreadable(ModelError):
    """A judge answered, but not with a readable verdict; ``raw`` is what it said."""

    def __init__(self, message: str, *, raw: str):
        super().__init__(message)
        self.raw = raw
        self.tokens = 0                     # what the calls behind it used, filled in by the caller
        self.cost_usd: float | None = 0.0


class ApiError(GenlabError):
    """An answer `genlab serve` gives itself, in OpenAI's envelope (``headers``: e.g. Retry-After)."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message, param=param)
        self.http_status, self.error_type, self.code = status, type_, code
        self.headers = headers or {}
