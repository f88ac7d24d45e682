"""A request body read under limits, for the project's two small HTTP servers (the cloning server
and the labeling page): its declared size is checked before a byte of it is read, and all of it
must arrive within one deadline, so neither a huge nor a trickled body can hold a thread. And the
cloning server's multipart/form-data body: parsed and built with the standard library only."""
import email.message
import email.parser
import email.policy
import re
import secrets
import time


def send_body(handler, code: int, body: bytes, ctype: str) -> None:
    """One whole response of an http.server handler: status, type, length, body."""
    handler.send_response(code)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


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


# --- multipart/form-data: the cloning server's request format (fields plus a file, as `curl -F` sends) ---

MULTIPART = "multipart/form-data"
_NAME = re.compile(r'[^"\\\r\n]+')  # what the encoder puts in a quoted name="..." without escaping


def _one_line(header: str | None) -> str:
    return (header or "").replace("\r", " ").replace("\n", " ")  # no header of ours can be injected into


def multipart_boundary(content_type: str | None) -> str:
    """The boundary of a multipart/form-data Content-Type: 415 for another type, 400 without one.
    Cheap, so a server checks it before it reads the body."""
    msg = email.message.EmailMessage(policy=email.policy.HTTP)
    msg["Content-Type"] = _one_line(content_type)
    if msg.get_content_type() != MULTIPART:
        raise BodyRefused(415, f"Content-Type must be {MULTIPART} (got {(content_type or 'none')[:60]!r})")
    boundary = msg.get_boundary()
    if not boundary:
        raise BodyRefused(400, f"Content-Type {MULTIPART} needs a boundary parameter")
    return boundary


def parse_multipart(content_type: str | None, body: bytes, max_parts: int = 32) -> tuple[dict[str, str], dict[str, bytes]]:
    """The text parts (UTF-8) and the file parts (those with a filename) of a multipart/form-data body,
    by name. BodyRefused: 415 for another Content-Type; 400 for a missing boundary, a malformed body,
    more than max_parts parts, a part without a name, or a name given twice."""
    boundary = multipart_boundary(content_type)
    # counted before parsing: a body of many empty parts would become many message objects
    if body.count(b"--" + boundary.encode("latin-1", "replace")) > max_parts + 1:
        raise BodyRefused(400, f"multipart body has more than {max_parts} parts")
    try:
        return _form_parts(_one_line(content_type), body)
    except BodyRefused:
        raise
    except Exception as e:  # the email package's header parser has failed on hostile input before
        raise BodyRefused(400, f"malformed {MULTIPART} body ({type(e).__name__})") from None


def read_form_body(handler, max_bytes: int, timeout_s: float) -> bytes:
    """A multipart request's body, read only once its headers pass: no chunked transfer (411; the
    standard library's server does not decode it), a Content-Length within max_bytes, and a
    multipart Content-Type with a boundary (a JSON or boundless body is refused unread)."""
    if "Transfer-Encoding" in handler.headers:
        raise BodyRefused(411, "Transfer-Encoding is not supported: send a Content-Length")
    n = declared_length(handler.headers, max_bytes)
    multipart_boundary(handler.headers.get("Content-Type"))
    return read_body(handler, n, timeout_s)


def checked_form(content_type: str | None, body: bytes, allowed: tuple[str, ...],
                 file_field: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """parse_multipart, then what every form of our servers needs: no field outside `allowed`, and
    `file_field` present as a file part. BodyRefused (400) names the first wrong field."""
    fields, files = parse_multipart(content_type, body)
    unknown = sorted((set(fields) | set(files)) - set(allowed))
    if unknown:
        raise BodyRefused(400, f"unknown field {unknown[0][:50]!r}; fields: {', '.join(allowed)}")
    if file_field in fields:
        raise BodyRefused(400, f"field {file_field!r}: must be a file part (with a filename), got a text part")
    if file_field not in files:
        raise BodyRefused(400, f"field {file_field!r}: missing (a file part)")
    return fields, files


def _form_parts(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    # The email package is the standard library's MIME parser; the multipart body gets the header it
    # came with, and the HTTP policy keeps header lines unfolded.
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    defects = [type(d).__name__ for m in msg.walk() for d in m.defects]
    if defects or not msg.is_multipart():
        raise BodyRefused(400, f"malformed {MULTIPART} body ({', '.join(defects) or 'no parts'})")
    fields, files = {}, {}
    for part in msg.iter_parts():
        cd = part["Content-Disposition"]
        if part.is_multipart() or cd is None or cd.content_disposition != "form-data" or not cd.params.get("name"):
            raise BodyRefused(400, "every part needs Content-Disposition: form-data; name=\"...\" (and no nested parts)")
        name = cd.params["name"]
        if name in fields or name in files:
            raise BodyRefused(400, f"field {name[:50]!r}: given more than once")
        if "Content-Transfer-Encoding" in part:  # deprecated for form data (RFC 7578 4.7): bytes are sent as they are
            raise BodyRefused(400, f"field {name[:50]!r}: Content-Transfer-Encoding is not supported")
        data = part.get_payload(decode=True)
        if "filename" in cd.params:
            files[name] = data
        else:
            try:
                fields[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BodyRefused(400, f"field {name[:50]!r}: not UTF-8 text") from None
    return fields, files


def encode_multipart(parts) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart/form-data request from (name, value) pairs: a str value is a
    text part (UTF-8), a bytes value a file part (its filename is the name)."""
    parts = [(n, v.encode() if isinstance(v, str) else v, isinstance(v, bytes)) for n, v in parts]
    if not all(_NAME.fullmatch(n) for n, _, _ in parts):
        raise ValueError(f"multipart names must be non-empty, without quotes, backslashes or line breaks: "
                         f"{[n for n, _, _ in parts]}")
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in data for _, data, _ in parts):  # a random 128-bit token: practically never
        boundary = secrets.token_hex(16)
    body = bytearray()
    for name, data, is_file in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{name}"' if is_file else "")
        kind = "application/octet-stream" if is_file else "text/plain; charset=utf-8"
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n".encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"{MULTIPART}; boundary={boundary}", bytes(body)
