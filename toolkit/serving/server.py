"""``toolkit serve``: trained runs behind a JSON API on Starlette and uvicorn, with a page.

Endpoints (docs/serving.md has the full API):

- ``GET /health``: 200 and the runs served (the one request that needs no token);
- ``GET /runs``: each run's kind, authors, unit, metrics and generation defaults;
- ``POST /generate``: text from a generator (or one author of an author-lms run), whole
  or streamed as Server-Sent Events; concurrent requests for one model share a batch
  (:mod:`toolkit.serving.batcher`);
- ``POST /attribute``: what ``toolkit attribute --json`` answers for one text;
- ``GET /``: the page (``page.html``), self-contained.

A request the server cannot take is a 4xx JSON answer ``{"error": ..., "field": ...}``
whose message names the field; nothing a client sends is a 5xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from importlib.resources import files

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from toolkit.config import params
from toolkit.config.schema import generate_settings
from toolkit.errors import ConfigError, ToolkitError
from toolkit.runs.rundir import Run

# Each field of POST /generate, and what it expects (the settings are checked as
# `toolkit generate` checks its flags).
GENERATE_FIELDS = ("run", "prime", "length", "temperature", "top_k", "top_p", "seed",
                   "author", "stream")
ATTRIBUTE_FIELDS = ("run", "text", "model")
# Far past any useful temperature (1000 already samples nearly uniformly); it keeps the
# number a float32 in the sampling loop.
MAX_TEMPERATURE = 1e4


@dataclass
class Settings:
    """The server's limits: tokens per request, prime tokens, bytes per body, seconds
    per request; rows per batch and tokens per chunk of the batched loop; the bearer
    token (``None``: none needed)."""

    max_length: int = 2000
    max_prime: int = 2000
    max_body: int = 1_000_000
    timeout: float = 60.0
    slots: int = 32
    chunk: int = 32
    jit_compile: bool | None = None
    token: str | None = None


class RequestError(Exception):
    """A request the server refuses: an HTTP status, a message, and the field it blames."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def error_response(message: str, field: str | None = None, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


class ServedRun:
    """One trained run the server answers for: its generators (a batcher per model; one
    per author of an author-lms run) and its attributor, built when the server starts."""

    def __init__(self, name: str, run: Run, settings: Settings):
        self.name, self.run = name, run
        self.head = run.head
        self.batchers: dict[str | None, object] = {}
        self.attributor = None
        self.attributors: dict[str, object] = {}
        self.attribute_lock = threading.Lock()
        self.settings = settings

    def start(self) -> None:
        """Build the models (and compile the sampling loops) this run serves."""
        from toolkit.model.assembly import author_twin, inference_twin
        from toolkit.serving.batcher import Batcher
        from toolkit.serving.stepper import StepModel

        run, settings = self.run, self.settings
        twins = {}
        if self.head.generates:
            twins[None] = inference_twin(run.model, run.components, len(run.vocab), 1)
        elif self.head.writes_per_author:
            for index, author in enumerate(run.labels):
                twins[author] = author_twin(run.model, run.components, len(run.vocab), 1,
                                            index)
        for author, twin in twins.items():
            batcher = Batcher(StepModel(twin), settings.slots, settings.chunk,
                              settings.jit_compile, name=f"{self.name}:{author or ''}")
            batcher.warm_up()
            self.batchers[author] = batcher
        if self.head.attributes:
            self.attributor = self.attributor_for("lstm")

    def attributor_for(self, model: str):
        """The run's :class:`~toolkit.attribution.attribute.Attributor` for ``model``
        (``"lstm"`` or ``"ensemble"``), made once."""
        from toolkit.attribution.attribute import Attributor

        if model not in self.attributors:
            self.attributors[model] = Attributor(self.run, model)
        return self.attributors[model]

    def stop(self) -> None:
        for batcher in self.batchers.values():
            batcher.stop()

    def describe(self) -> dict:
        """What ``GET /runs`` says of the run."""
        try:
            metrics = self.run.metrics()
        except (OSError, ValueError):
            metrics = {}
        return {"name": self.name, "kind": self.run.config.head.use,
                "generates": bool(self.batchers), "attributes": self.attributor is not None,
                "authors": list(self.run.labels),
                "unit": self.run.preprocessor.unit, "vocab_size": len(self.run.vocab),
                "metrics": {key: metrics[key] for key in ("validation", "data", "epochs_done")
                            if key in metrics},
                "generate": {key: self.run.config.generate.get(key) for key in
                             ("prime", "length", "temperature", "top_k", "top_p")}}


def run_names(paths: list[str]) -> dict[str, Run]:
    """The runs to serve by name: a run's folder name, or its path where two share one."""
    runs = [Run.open(path) for path in paths]
    names = [run.path.name for run in runs]
    return {name if names.count(name) == 1 else str(run.path): run
            for name, run in zip(names, runs)}


def check_type(value, kind: type, field: str):
    """``value`` if it is a ``kind`` (an int for a float; never a bool for a number)."""
    if kind is str and isinstance(value, str):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    names = {str: "a string", bool: "true or false"}
    raise RequestError(f"{field}: expected {names[kind]}, received {json.dumps(value)[:80]}",
                       field)


class App:
    """The Starlette application over a set of served runs."""

    def __init__(self, runs: dict[str, Run], settings: Settings):
        self.settings = settings
        self.runs = {name: ServedRun(name, run, settings) for name, run in runs.items()}
        self.page = files("toolkit.serving").joinpath("page.html").read_text(encoding="utf-8")
        routes = [Route("/", self.index), Route("/health", self.health),
                  Route("/runs", self.list_runs),
                  Route("/generate", self.generate, methods=["POST"]),
                  Route("/attribute", self.attribute, methods=["POST"])]
        self.starlette = Starlette(routes=routes, exception_handlers={
            HTTPException: self.http_error, Exception: self.server_error})

    def start(self) -> None:
        for served in self.runs.values():
            served.start()

    def stop(self) -> None:
        for served in self.runs.values():
            served.stop()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.settings.token and scope["path"] != "/health":
            request = Request(scope)
            given = request.headers.get("authorization", "")
            if scope["path"] == "/" and request.query_params.get("token"):
                given = f"Bearer {request.query_params['token']}"
            if not secrets.compare_digest(given.encode(), f"Bearer {self.settings.token}".encode()):
                response = error_response("Authorization: a bearer token is required "
                                          "(header `Authorization: Bearer TOKEN`, or "
                                          "/?token=TOKEN for the page)", "Authorization", 401)
                await response(scope, receive, send)
                return
        await self.starlette(scope, receive, send)

    async def http_error(self, request, exc: HTTPException):
        return error_response(f"{request.method} {request.url.path}: {exc.detail}",
                              None, exc.status_code)

    async def server_error(self, request, exc: Exception):
        return error_response(f"internal error: {type(exc).__name__}: {exc}", None, 500)

    async def index(self, request: Request):
        return HTMLResponse(self.page)

    async def health(self, request: Request):
        return JSONResponse({"status": "ok", "runs": list(self.runs)})

    async def list_runs(self, request: Request):
        return JSONResponse({"runs": [served.describe() for served in self.runs.values()]})

    async def read_json(self, request: Request, fields: tuple[str, ...]) -> dict:
        """The request's JSON object, within the size cap, with only known fields."""
        limit = self.settings.max_body
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(f"body: {declared} bytes is over the server's limit of "
                               f"{limit} bytes", "body", 413)
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise RequestError(f"body: over the server's limit of {limit} bytes",
                                   "body", 413)
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise RequestError(f"body: not a JSON object ({err}); send "
                               f"{{\"{fields[1]}\": ...}}", "body") from None
        if not isinstance(data, dict):
            raise RequestError(f"body: expected a JSON object, received a "
                               f"{type(data).__name__}", "body")
        for key in data:
            if key not in fields:
                raise RequestError(f"{key}: unknown field; known fields: "
                                   f"{', '.join(fields)}", str(key)[:80])
        return data

    def served_run(self, data: dict) -> ServedRun:
        name = data.get("run")
        if name is None:
            if len(self.runs) == 1:
                return next(iter(self.runs.values()))
            raise RequestError(f"run: missing; this server serves {len(self.runs)} runs: "
                               f"{', '.join(self.runs)}", "run")
        check_type(name, str, "run")
        if name not in self.runs:
            raise RequestError(f"run: no run named {name[:80]!r} here; served: "
                               f"{', '.join(self.runs)}", "run", 404)
        return self.runs[name]

    def generation(self, data: dict):
        """The batcher and job settings of a checked POST /generate body."""
        served = self.served_run(data)
        run = served.run
        if not served.batchers:
            raise RequestError(f"run: {served.name} is a {run.config.head.use!r} run; it "
                               f"attributes text and cannot generate it", "run")
        author = data.get("author")
        if served.head.writes_per_author:
            if author is None:
                raise RequestError(f"author: missing; {served.name} writes in one author's "
                                   f"style: one of {', '.join(run.labels)}", "author")
            check_type(author, str, "author")
            if author not in served.batchers:
                raise RequestError(f"author: {served.name} has no author {author[:80]!r}; "
                                   f"its authors are {', '.join(run.labels)}", "author")
        elif author is not None:
            raise RequestError(f"author: {served.name} is a {run.config.head.use!r} run with "
                               f"one style; only author-lms runs take an author", "author")
        given = {key: data[key] for key in ("prime", "length", "temperature", "top_k",
                                            "top_p", "seed") if key in data}
        try:
            options = params.validate(generate_settings,
                                      {**run.config.generate, **given, "samples": 1}, "")
        except ConfigError as err:
            raise RequestError(f"{err.path}: {err.message}", err.path) from None
        if options["length"] > self.settings.max_length:
            raise RequestError(f"length: {options['length']} is over this server's limit of "
                               f"{self.settings.max_length} tokens a request", "length")
        if not options["temperature"] <= MAX_TEMPERATURE:
            raise RequestError(f"temperature: expected at most {MAX_TEMPERATURE:g} (1 samples "
                               f"as the model predicts, 0 is greedy), received "
                               f"{options['temperature']}", "temperature")
        # a top_k beyond the vocabulary is no limit (and must fit the loop's int32)
        options["top_k"] = min(options["top_k"], len(run.vocab))
        if options.get("seed") is not None and options.get("seed") >= 2**63:
            raise RequestError(f"seed: expected an integer below 2**63, received "
                               f"{options['seed']}", "seed")
        stream = check_type(data.get("stream", False), bool, "stream")
        return served, served.batchers[author], self.encode_prime(run, options["prime"]), \
            options, stream

    def encode_prime(self, run: Run, prime: str) -> np.ndarray:
        tokens = run.preprocessor(prime)
        if not len(tokens):
            raise RequestError(f"prime: {prime[:80]!r} gives no tokens after preprocessing; "
                               f"give text the model knows", "prime")
        unknown = run.vocab.unknown(tokens)
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:10])
            raise RequestError(f"prime: {len(unknown)} token(s) never seen in training: "
                               f"{shown}; remove or replace them", "prime")
        ids = run.vocab.encode(tokens)
        if len(ids) > self.settings.max_prime:
            raise RequestError(f"prime: {len(ids)} tokens is over this server's limit of "
                               f"{self.settings.max_prime}", "prime")
        return ids

    async def generate(self, request: Request):
        try:
            data = await self.read_json(request, GENERATE_FIELDS)
            served, batcher, ids, options, stream = self.generation(data)
        except RequestError as err:
            return error_response(err.message, err.field, err.status)
        stream = stream or "text/event-stream" in request.headers.get("accept", "")
        from toolkit.serving.batcher import Job

        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        text = Decoder(served.run)
        finished = loop.create_future()

        def emit(tokens, error):
            """Called in the batcher's thread: a stream wakes this loop for every chunk,
            a whole answer only once, when it is done."""
            if stream:
                loop.call_soon_threadsafe(pieces.put_nowait, (tokens, error))
            elif tokens is not None:
                collected.append(tokens)
            else:
                loop.call_soon_threadsafe(finish, error)

        def finish(error):
            if not finished.done():
                finished.set_result(error)

        collected: list = []
        job = Job(ids, options["length"], emit, options["temperature"], options["top_k"],
                  options["top_p"], *([options.get("seed")] if options.get("seed") is not None
                                      else []))
        head = {"run": served.name, "author": data.get("author"),
                "prime": text.decode_ids(ids), "seed": job.seed}
        batcher.submit(job)
        deadline = loop.time() + self.settings.timeout
        timeout_error = (f"timeout: the request ran past this server's limit of "
                         f"{self.settings.timeout:g} s; ask for fewer tokens (length)")

        async def next_piece():
            return await asyncio.wait_for(pieces.get(), max(0.0, deadline - loop.time()))

        if not stream:
            try:
                error = await asyncio.wait_for(asyncio.shield(finished), self.settings.timeout)
            except asyncio.TimeoutError:
                return error_response(timeout_error, "length", 408)
            finally:
                job.cancel()
            if error:
                return error_response(error, None, 503)
            for tokens in collected:
                text.add(tokens)
            return JSONResponse({**head, "text": text.text, "tokens": text.count})

        async def events():
            try:
                yield sse("start", head)
                while True:
                    try:
                        tokens, error = await next_piece()
                    except asyncio.TimeoutError:
                        yield sse("error", {"error": timeout_error, "field": "length"})
                        return
                    if tokens is None:
                        break
                    yield sse("text", {"text": text.add(tokens)})
                if error:
                    yield sse("error", {"error": error, "field": None})
                else:
                    yield sse("done", {**head, "text": text.text, "tokens": text.count})
            finally:
                job.cancel()  # frees the row when the client goes away mid-stream

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    async def attribute(self, request: Request):
        try:
            data = await self.read_json(request, ATTRIBUTE_FIELDS)
            served = self.served_run(data)
            if served.attributor is None:
                raise RequestError(f"run: {served.name} is a {served.run.config.head.use!r} "
                                   f"run; it generates text and cannot attribute it", "run")
            if "text" not in data:
                raise RequestError("text: missing; send the text to attribute", "text")
            text = check_type(data["text"], str, "text")
            if not text.strip():
                raise RequestError("text: is empty; give a text to attribute", "text")
            model = check_type(data.get("model", "lstm"), str, "model")
            if model not in ("lstm", "ensemble"):
                raise RequestError(f"model: expected \"lstm\" or \"ensemble\", received "
                                   f"{model[:80]!r}", "model")
        except RequestError as err:
            return error_response(err.message, err.field, err.status)

        def answer():
            with served.attribute_lock:
                try:
                    attributor = served.attributor_for(model)
                except ToolkitError as err:
                    raise RequestError(f"model: {err}", "model") from None
                try:
                    return attributor.attribute_text(text, "text").to_json()
                except ToolkitError as err:  # "text: too few tokens to score", ...
                    raise RequestError(str(err), "text") from None

        try:
            result = await asyncio.wait_for(run_in_threadpool(answer), self.settings.timeout)
        except RequestError as err:
            return error_response(err.message, err.field, err.status)
        except asyncio.TimeoutError:
            return error_response(f"timeout: attributing took longer than this server's "
                                  f"limit of {self.settings.timeout:g} s; send a shorter "
                                  f"text", "text", 408)
        return JSONResponse({"run": served.name, **result})


def sse(event: str, data: dict) -> str:
    """One Server-Sent Event; its data is one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class Decoder:
    """A request's tokens so far as text, and what each new chunk adds to it."""

    def __init__(self, run: Run):
        self.run = run
        self.ids: list[int] = []
        self.text = ""

    @property
    def count(self) -> int:
        return len(self.ids)

    def decode_ids(self, ids) -> str:
        return self.run.preprocessor.detokenize(self.run.vocab.decode(ids))

    def add(self, tokens) -> str:
        """Take new token ids; return the text they add."""
        self.ids += [int(t) for t in tokens]
        # The whole text again, then what it adds: joining tokens may depend on their
        # neighbours (words and punctuation), never on what comes after them.
        text = self.decode_ids(self.ids)
        added, self.text = text[len(self.text):], text
        return added


LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to listen beyond this machine without a token or an explicit ``--insecure``."""
    if is_loopback(host) or token:
        return
    if not insecure:
        raise ToolkitError(f"--host {host}: listening beyond this machine needs --token TOKEN "
                           f"(every request but /health must then carry it), or --insecure "
                           f"to serve anyone who can reach {host} without one")
    print(f"toolkit serve: warning: --insecure: anyone who can reach {host} can use these "
          f"runs, without a token", file=sys.stderr, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), with errors a user can act on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # connections whose socket says so, and a response's headers and body are two
    # writes (with Nagle on, the body waited ~40 ms for the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ToolkitError(f"--host {host} --port {port}: cannot listen there ({err.strerror}); "
                           f"choose another --port (0 picks a free one)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(paths: list[str], host: str = "127.0.0.1", port: int = 8000,
          settings: Settings | None = None, insecure: bool = False) -> int:
    """Serve the runs at ``paths`` until SIGINT or SIGTERM; the requests in flight finish
    first. Returns 0."""
    import uvicorn

    settings = settings or Settings()
    check_host(host, settings.token, insecure)
    app = App(run_names(paths), settings)
    sock = bind(host, port)
    app.start()
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"serving {', '.join(app.runs)} on http://{shown}:{bound_port}/ "
          f"(Ctrl-C stops after the requests in flight)", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=settings.timeout + 5)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully: a
    # handler of ours turns that into a clean return (exit status 0).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        app.stop()
        sock.close()
    print("toolkit serve: stopped", flush=True)
    return 0
