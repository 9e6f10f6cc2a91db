"""What a failed send means for the message, whoever sends it (survey invitations, the automation
outbox). Three answers, because they call for three different actions:

- PERMANENT: the provider answered and refused for good (SMTP 5xx, an HTTP 4xx other than
  408/429). Nothing went out; sending again would be refused again. The message fails with
  the reason, and the rest of the queue goes on.
- TEMPORARY: nothing went out and it may work later (SMTP 4xx, a refused or timed-out
  connection, an HTTP 5xx/408/429). Try again with a backoff.
- UNKNOWN: the message was handed over and the answer was lost (the connection dropped or timed
  out mid-send). It may have gone out: a sender that must not send twice keeps it "in doubt".
"""

import smtplib
import socket
import urllib.error

PERMANENT = "permanent"
TEMPORARY = "temporary"
UNKNOWN = "unknown"


def _by_code(code: int) -> str:
    return TEMPORARY if 400 <= code < 500 else PERMANENT


def send_error_kind(exc: BaseException, *, connected: bool = True) -> str:
    """PERMANENT, TEMPORARY or UNKNOWN for an exception raised while sending one message.
    `connected`: the connection was open when the message was handed over (an error then may
    come after the provider took it); False for errors while connecting."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # Only this message's recipients were refused: the server took nothing.
        codes = [code for code, _text in exc.recipients.values()]
        return TEMPORARY if codes and all(400 <= code < 500 for code in codes) else PERMANENT
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, DATA refused, 421...
        return _by_code(exc.smtp_code)
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code in (408, 429) or exc.code >= 500:
            return TEMPORARY
        return PERMANENT
    if isinstance(exc, smtplib.SMTPConnectError | ConnectionRefusedError | socket.gaierror):
        return TEMPORARY
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
        return TEMPORARY
    if isinstance(exc, OSError | smtplib.SMTPException):  # dropped, timed out, reset
        return UNKNOWN if connected else TEMPORARY
    return UNKNOWN if connected else TEMPORARY


def send_error_text(exc: BaseException) -> str:
    """A short reason for the admin: the server's code and words when it answered."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = []
        for address, (code, text) in exc.recipients.items():
            words = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
            parts.append(f"{code} {words} ({address})")
        return "; ".join(parts)[:2000]
    if isinstance(exc, smtplib.SMTPResponseException):
        words = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {words}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]
