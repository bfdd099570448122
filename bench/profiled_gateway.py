"""``interlock serve`` under a sampling profiler that runs only between two signals.

    python -m bench.profiled_gateway OUT -- serve -c interlock.yaml ...

SIGUSR1 starts the profiler, SIGUSR2 stops it and writes ``OUT.txt`` (the call tree),
``OUT.flat.txt`` (functions by self time) and ``OUT.json`` (self time by component and by
function). pyinstrument samples the main thread every 0.5 ms of its *CPU* time, whatever it is
doing (``async_mode="disabled"``), so waiting costs nothing and the figures are CPU per call.
Without pyinstrument, cProfile is used instead (deterministic, heavier: it inflates small
functions). Used by ``python -m bench.profile_call --profiler pyinstrument``.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

COMPONENTS: list[tuple[str, str]] = [
    ("/executor/", "interlock executor (decision, audit, upstream pool)"),
    ("/registry/", "interlock registry (surface, catalogue, app)"),
    ("/mcp/server/", "mcp SDK server (session manager, transport, dispatch)"),
    ("/mcp/client/", "mcp SDK client (to the upstream)"),
    ("/mcp/shared/", "mcp SDK shared (JSON-RPC dispatcher, streams)"),
    ("/mcp_types/", "mcp types (pydantic models)"),
    ("/mcp/", "mcp SDK other"),
    ("/pydantic", "pydantic (validation, serialisation)"),
    ("/jsonschema/", "jsonschema (the SDK client checking structuredContent against outputSchema)"),
    ("/httpx2/", "httpx2 (client HTTP to the upstream)"),
    ("/httpcore", "httpcore (client HTTP to the upstream)"),
    ("/h11/", "h11"),
    ("/sse_starlette/", "sse-starlette (SSE responses)"),
    ("/starlette/", "starlette (the SDK's ASGI app)"),
    ("/litestar/", "litestar (routing to the MCP mount)"),
    ("/uvicorn/", "uvicorn (HTTP server)"),
    ("/anyio/", "anyio (task groups, streams, cancel scopes)"),
    ("/joserfc/", "joserfc (JWT signature check)"),
    ("/cryptography/", "cryptography"),
    ("/sqlite_utils/", "sqlite-utils"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("/logging/", "logging"),
]


def component(path: str) -> str:
    for marker, name in COMPONENTS:
        if marker in path:
            return name
    if path.startswith("<"):
        return "built-in / C code"
    return "other: " + Path(path).parent.name


def _pyinstrument(out: Path) -> tuple[Any, Any]:
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    # CPU time of this thread, not wall time: with a C event loop (uvloop) a wall-clock sampler
    # charges the time spent waiting in epoll to whichever Python frame runs next.
    get_stack_sampler().timer_func = time.thread_time
    profiler = Profiler(interval=0.0005, async_mode="disabled")

    def start() -> None:
        profiler.start()

    def stop() -> None:
        session = profiler.stop()
        out.with_suffix(".txt").write_text(profiler.output_text(show_all=False, short_mode=False))
        out.with_suffix(".flat.txt").write_text(profiler.output_text(flat=True, show_all=True))
        by_component: Counter[str] = Counter()
        by_function: Counter[str] = Counter()
        root = session.root_frame()
        idle = 0.0

        def walk(frame: Any) -> None:
            nonlocal idle
            own = frame.time - sum(child.time for child in frame.children)
            # pyinstrument 5 keeps self time in a synthetic `[self]` child: charge it to the parent.
            owner = frame.parent if frame.is_synthetic and frame.parent is not None else frame
            if own > 0:
                loop = owner.function in ("Runner.run", "run") and (owner.file_path or "").endswith("runners.py")
                if owner.parent is None or loop:
                    idle += own  # the event loop itself: uvloop's C I/O callbacks, and waiting
                else:
                    by_component[component(owner.file_path or "<unknown>")] += own
                    by_function[f"{owner.function} ({owner.file_path_short}:{owner.line_no})"] += own
            for child in frame.children:
                walk(child)

        if root is not None:
            walk(root)
        summary = {"profiler": "pyinstrument", "duration_s": session.duration, "cpu_time_s": session.cpu_time,
                   "sample_count": session.sample_count, "event_loop_s": idle,
                   "by_component_s": dict(by_component.most_common()),
                   "by_function_s": dict(by_function.most_common(60))}
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2))

    return start, stop


def _cprofile(out: Path) -> tuple[Any, Any]:
    profiler = cProfile.Profile()

    def start() -> None:
        profiler.enable()

    def stop() -> None:
        profiler.disable()
        stats = pstats.Stats(profiler)
        with out.with_suffix(".txt").open("w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("cumulative").print_stats(80)
        by_component: Counter[str] = Counter()
        by_function: Counter[str] = Counter()
        for (path, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
            own = row[2]
            by_component[component(path)] += own
            by_function[f"{name} ({Path(path).name}:{line})"] += own
        summary = {"profiler": "cProfile", "by_component_s": dict(by_component.most_common()),
                   "by_function_s": dict(by_function.most_common(60))}
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2))

    return start, stop


def main() -> int:
    out = Path(sys.argv[1])
    argv = sys.argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    try:
        start, stop = _pyinstrument(out)
    except ImportError:
        start, stop = _cprofile(out)

    def on_start(signum: int, frame: FrameType | None) -> None:
        start()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGUSR1, on_start)
    signal.signal(signal.SIGUSR2, on_stop)
    from registry.cli import main as interlock

    return interlock(argv)


if __name__ == "__main__":
    raise SystemExit(main())
