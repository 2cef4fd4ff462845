"""The server's end of the wire: LSP frames off stdin, and a protocol that answers every request.

An editor, a plugin or a broken pipe may send anything. pygls's own reader trusts the header
(a `Content-Length` of 5 000 digits ends its loop, a huge one makes it allocate that much) and
its message handling drops what it cannot read without answering. Here the header is bounded,
a broken frame is logged and skipped (reading resumes at the sender's next `Content-Length`),
and a message that is not valid JSON-RPC, or whose params do not fit its method, gets a
JSON-RPC error when it wanted an answer; so does a request before `initialize` or after
`shutdown` (LSP: ServerNotInitialized / InvalidRequest).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future
from typing import Any, BinaryIO
from urllib.parse import unquote

import attrs
import cattrs
from lsprotocol import types as lsp
from pygls.exceptions import (JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcMethodNotFound,
                              JsonRpcParseError, JsonRpcServerNotInitialized)
from pygls.protocol import (JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage, LanguageServerProtocol,
                            lsp_method)

log = logging.getLogger("reachls.lsp")

HEADER_END = b"\r\n\r\n"
#: A header block (all fields) longer than this is not a header: a frame is skipped, not buffered.
MAX_HEADER_BYTES = 8 * 1024
#: The largest message body read; a larger `Content-Length` is refused without reading the body.
MAX_BODY_BYTES = 256 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
_LENGTH_FIELD = b"content-length"
_HEADER_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")
_QUOTED = 60  # bytes of a bad header quoted in the log


def _quoted(data: bytes) -> str:
    return repr(data[:_QUOTED]) + ("…" if len(data) > _QUOTED else "")


def content_length(header: bytes) -> int | str:
    """The body length a header block announces, or what is wrong with the block."""
    length: int | None = None
    for line in header.lstrip(b"\r\n").split(b"\r\n"):
        field = _HEADER_FIELD.fullmatch(line)
        if field is None:
            return f"not a header field: {_quoted(line)}"
        if field[1].lower() != _LENGTH_FIELD:
            continue
        value = field[2]
        if not value.isdigit() or len(value) > len(str(MAX_BODY_BYTES)) or int(value) > MAX_BODY_BYTES:
            return f"Content-Length {_quoted(value)} is not a length of at most {MAX_BODY_BYTES} bytes"
        if length is not None and length != int(value):
            return "two different Content-Length fields"
        length = int(value)
    return "no Content-Length field" if length is None else length


class FrameReader:
    """Message bodies from a byte stream of `Content-Length` frames.

    A bad header block (a line that is no header field, no or a bad `Content-Length`, more than
    MAX_HEADER_BYTES before the blank line) is reported to `on_problem` and skipped up to the next
    `Content-Length` field: the start of the next frame the sender wrote. A body is read whole
    only once it has all arrived, chunk by chunk, so a false length costs no memory up front."""

    def __init__(self, read_chunk: Callable[[], Awaitable[bytes]], on_problem: Callable[[str], None]) -> None:
        self._read_chunk = read_chunk
        self._on_problem = on_problem
        self._buffer = bytearray()
        self._ended = False

    async def _more(self) -> bool:
        if not self._ended:
            chunk = await self._read_chunk()
            self._buffer += chunk
            self._ended = not chunk
        return not self._ended

    async def next_body(self) -> bytes | None:
        """The next frame's body; None once the input has ended (a truncated last frame is dropped)."""
        while True:
            end = self._buffer.find(HEADER_END, 0, MAX_HEADER_BYTES + len(HEADER_END))
            if end < 0:
                if len(self._buffer) < MAX_HEADER_BYTES + len(HEADER_END):
                    if not await self._more():
                        return None
                    continue
                problem: int | str = f"no end of header within {MAX_HEADER_BYTES} bytes"
            else:
                problem = content_length(bytes(self._buffer[:end]))
            if isinstance(problem, str):
                self._on_problem(problem)
                if not await self._skip_to_next_frame():
                    return None
                continue
            start = end + len(HEADER_END)
            while len(self._buffer) < start + problem:
                if not await self._more():
                    return None
            body = bytes(self._buffer[start:start + problem])
            del self._buffer[:start + problem]
            return body

    async def _skip_to_next_frame(self) -> bool:
        """Drop the bad frame's start and everything up to the next `Content-Length`; False at the end."""
        del self._buffer[:1]
        while True:
            found = self._buffer.lower().find(_LENGTH_FIELD)
            if found >= 0:
                del self._buffer[:found]
                return True
            del self._buffer[:max(0, len(self._buffer) - len(_LENGTH_FIELD) + 1)]
            if not await self._more():
                return False


def _valid_id(value: Any) -> bool:
    """LSP ids are integers or strings (a JSON `true` is neither, though Python's bool is an int)."""
    return type(value) is int or type(value) is str


def message_kind(data: Any) -> tuple[str | None, str]:
    """"request", "notification" or "response", or None with why the JSON is none of them."""
    if not isinstance(data, dict):
        return None, "a message is a JSON object"
    if data.get("jsonrpc") != "2.0":
        return None, 'a message has "jsonrpc": "2.0"'
    if "id" in data and not _valid_id(data["id"]):
        return None, f"an id is an integer or a string, not {json.dumps(data['id'])[:_QUOTED]}"
    if "method" in data:
        if not isinstance(data["method"], str):
            return None, "a method is a string"
        return ("request" if "id" in data else "notification"), ""
    if "id" in data and ("result" in data) != ("error" in data):
        return "response", ""
    return None, "neither a request, a notification nor a response"


def _params_problem(error: Exception) -> str:
    """One line naming the fields of a message that do not fit its method's types."""
    try:
        problems = cattrs.transform_error(error, path="$")
    except Exception:  # transform_error only knows cattrs's own errors: anything else is said as it is
        problems = [f"{type(error).__name__}: {error}"]
    return "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")


class ReachProtocol(LanguageServerProtocol):
    """pygls's LSP protocol, answering every request (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_received = False

    @property
    def shut_down(self) -> bool:
        """`shutdown` was received: only `exit` is taken now."""
        return self._shutdown

    def complain(self, message: str) -> None:
        """Something the client sent that could not be taken: logged here and in the client's log."""
        log.warning("%s", message)
        self.notify(lsp.WINDOW_LOG_MESSAGE, lsp.LogMessageParams(type=lsp.MessageType.Warning,
                                                                 message=f"reachls: {message}"))

    def refuse(self, msg_id: int | str | None, error: JsonRpcException) -> None:
        self.complain(f"refused {'a message' if msg_id is None else f'request {msg_id!r}'}: {error.message}")
        self._send_data(lsp.ResponseErrorMessage(id=msg_id, error=error.to_response_error()))

    def receive(self, body: bytes) -> None:
        """One message body off the wire: handled; or refused with a JSON-RPC error when it may be a
        request; or (a notification or response that cannot be read) logged and dropped."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            self.refuse(None, JsonRpcParseError(f"Parse error: {str(error)[:200]}"))
            return
        kind, why = message_kind(data)
        if kind is None:
            self.refuse(data.get("id") if isinstance(data, dict) and _valid_id(data.get("id")) else None,
                        JsonRpcInvalidRequest(f"Invalid request: {why}"))
        elif kind == "response":
            self._receive_response(data)
        else:
            self._receive_call(data, kind == "request")

    def _receive_call(self, data: dict[str, Any], is_request: bool) -> None:
        method, msg_id = data["method"], data.get("id")
        refusal = self._refusal(method, is_request)
        if refusal is not None:
            if is_request:
                self.refuse(msg_id, refusal)
            else:
                log.info("dropped notification %s: %s", method, refusal.message)
            return
        message_type = self.get_message_type(method) or (JsonRPCRequestMessage if is_request else JsonRPCNotification)
        if attrs.has(message_type) and is_request != ("id" in attrs.fields_dict(message_type)):
            if is_request:
                self.refuse(msg_id, JsonRpcInvalidRequest(f"Invalid request: {method} is a notification"))
            else:
                self.complain(f"dropped {method}: it is a request, sent without an id")
            return
        try:
            message = self._converter.structure(data, message_type)
        except Exception as error:  # cattrs raises many kinds for params that do not fit: each is bad params
            problem = f"{method}: {_params_problem(error)}"
            if is_request:
                self.refuse(msg_id, JsonRpcInvalidParams(f"Invalid params: {problem}"))
            else:
                self.complain(f"dropped notification {problem}")
            return
        if method == lsp.INITIALIZE:
            self.initialize_received = True
        self.handle_message(message)

    def _refusal(self, method: str, is_request: bool) -> JsonRpcException | None:
        """Why a call cannot be handled now: unknown, before initialize, after shutdown, a second initialize."""
        if method not in self.fm.builtin_features and method not in self.fm.features:
            return JsonRpcMethodNotFound(f"Method not found: {method}")
        if method == lsp.EXIT:
            return None
        if not self.initialize_received and method != lsp.INITIALIZE:
            return JsonRpcServerNotInitialized(f"Server not initialized: {method} before initialize")
        if self._shutdown:
            return JsonRpcInvalidRequest(f"Invalid request: {method} after shutdown")
        if method == lsp.INITIALIZE and self.initialize_received:
            return JsonRpcInvalidRequest("Invalid request: initialize was already received")
        return None

    def _receive_response(self, data: dict[str, Any]) -> None:
        """A client's answer to one of our requests; an answer that cannot be read fails that request."""
        msg_id = data["id"]
        result_type = None if "error" in data else self._result_types.pop(msg_id, None)
        try:
            message = self._converter.structure(
                data, lsp.ResponseErrorMessage if "error" in data else result_type or JsonRPCResponseMessage)
        except Exception as error:  # as in _receive_call: any failure to structure is a bad message
            self.complain(f"unreadable response {msg_id!r}: {_params_problem(error)}")
            future = self._request_futures.pop(msg_id, None)
            if future is not None and not future.done():
                future.set_exception(JsonRpcInvalidParams(f"unreadable response: {_params_problem(error)}"))
            return
        self.handle_message(message)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams) -> Generator[Any, Any, None]:
        """pygls's, for a document that is open: a change to one never opened has no text to apply to."""
        if unquote(params.text_document.uri) not in self.workspace.text_documents:
            self.complain(f"dropped didChange of {params.text_document.uri}: it was not opened")
            return
        yield from super().lsp_text_document__did_change(params)

    @lsp_method(lsp.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls's, cancelling the other requests in flight from a copy of their table: a cancelled
        request is answered, and leaves the table, at once (pygls iterates the table itself)."""
        if (user_handler := self.fm.features.get(lsp.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True

    def _send_handler_result(self, future: Future[Any], *, msg_id: int | str) -> None:
        """A handler's refusal (a JSON-RPC error it raised, e.g. an unknown command) is an answer, not
        a server fault: sent without pygls's traceback. Anything else goes the usual way."""
        error = None if future.cancelled() else future.exception()
        if isinstance(error, JsonRpcException):
            self._request_futures.pop(msg_id, None)
            self.refuse(msg_id, error)
            return
        super()._send_handler_result(future, msg_id=msg_id)


def _chunk_reader(stream: BinaryIO) -> Callable[[int], bytes]:
    """Whatever has arrived on `stream`, up to n bytes. A file descriptor is read directly: a
    daemon thread blocked inside a buffered reader aborts the interpreter as it exits."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream: no descriptor
        return getattr(stream, "read1", stream.read)
    return lambda n: os.read(descriptor, n)


def _pump(stream: BinaryIO, loop: asyncio.AbstractEventLoop, chunks: asyncio.Queue[bytes]) -> None:
    """Copy `stream` into `chunks` (b"" at its end), from a daemon thread: a blocking read never
    keeps the process alive after `exit`."""
    read = _chunk_reader(stream)
    while True:
        try:
            chunk = read(CHUNK_BYTES)
        except (OSError, ValueError):  # closed or broken: the input has ended
            chunk = b""
        try:
            asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
        except RuntimeError:  # the loop is gone: the server has stopped
            return
        if not chunk:
            return


async def serve_frames(stream: BinaryIO, protocol: ReachProtocol, stop: threading.Event) -> None:
    """Read frames off `stream` and hand each body to `protocol` until the input ends or `stop` is set."""
    chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
    threading.Thread(target=_pump, args=(stream, asyncio.get_running_loop(), chunks), name="reachls-stdin",
                     daemon=True).start()
    frames = FrameReader(chunks.get, lambda problem: protocol.complain(f"skipped a broken frame: {problem}"))
    while not stop.is_set():
        body = await frames.next_body()
        if body is None:
            return
        protocol.receive(body)


class StdoutWriter:
    """pygls's writer interface on stdout. `exit` closes it; what is still sent as the process
    winds down (a cancelled scan's end of progress) has no reader and goes nowhere."""

    def __init__(self, stdout: BinaryIO) -> None:
        self._stdout = stdout

    def close(self) -> None:
        self._stdout.close()

    def write(self, data: bytes) -> None:
        if not self._stdout.closed:
            self._stdout.write(data)
            self._stdout.flush()


def start_stdio(server: Any, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """pygls's `start_io`, with this module's reader."""
    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    try:
        asyncio.run(serve_frames(stdin or sys.stdin.buffer, server.protocol, stop))
    except BrokenPipeError:
        log.error("the client closed the connection: stopping")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
