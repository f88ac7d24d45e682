"""A request body read under limits, for the project's two small HTTP servers (the cloning server
and the labeling page): its declared size is checked before a byte of it is read, and all of it
must arrive within one deadline, so neither a huge nor a trickled body can hold a thread."""
import time


class BodyRefused(Exception):
    """A body the server will not read; `status` is the HTTP code the client gets."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def declared_length(headers, max_bytes: int) -> int:
    """The one Content-Length, plain ASCII digits, at most max_bytes (411, 400 or 413 otherwise)."""
    values = headers.get_all("Content-Length") or []
    if not values:
        raise BodyRefused(411, "Content-Length is missing: a Content-Length is required")
    if len(values) > 1:
        raise BodyRefused(400, "send one Content-Length header (it is given more than once)")
    value = values[0].strip()
    if not (value.isascii() and value.isdigit()):  # int() would also take '+5', '1_0' and non-ASCII digits
        raise BodyRefused(400, f"Content-Length {value[:40]!r} is not a non-negative integer")
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(max_bytes)) or int(digits) > max_bytes:  # no int() of a huge number
        raise BodyRefused(413, f"body of {digits[:40]} bytes is over the limit of {max_bytes} bytes")
    return int(digits)


def read_body(handler, n: int, timeout_s: float) -> bytes:
    """n bytes from a BaseHTTPRequestHandler's connection, all of them within timeout_s."""
    deadline, body = time.monotonic() + timeout_s, bytearray()
    try:
        while len(body) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            handler.connection.settimeout(left)
            chunk = handler.rfile.read1(min(n - len(body), 1 << 16))
            if not chunk:
                raise BodyRefused(400, f"body ended after {len(body)} of its {n} bytes (Content-Length)")
            body += chunk
    except TimeoutError:
        raise BodyRefused(408, f"body not received within {timeout_s} s") from None
    finally:
        handler.connection.settimeout(handler.timeout)  # the answer gets the handler's full time
    return bytes(body)
