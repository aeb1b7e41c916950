"""`python -m parareason.testing.sglang_standin`: serve a real model through the stand-in (manual use)."""
from __future__ import annotations

import argparse
import time

from parareason.testing.sglang_standin.modes import StandinModes
from parareason.testing.sglang_standin.server import SGLangStandin


def main() -> None:  # pragma: no cover - manual use
    ap = argparse.ArgumentParser(description="SGLang stand-in TEST server over the embedded engine")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=30000)
    ap.add_argument("--incremental-streaming-output", action="store_true")
    ap.add_argument("--context-length", type=int, default=None, help="refuse longer requests, as SGLang does")
    ap.add_argument("--real-defaults", action="store_true",
                    help="seeds ignored and temperature-scaled logprobs, as a server started without flags")
    args = ap.parse_args()
    from parareason.backends.registry import load_backend  # lazy: heavy import

    modes = (StandinModes.real_defaults if args.real_defaults else StandinModes)(context_length=args.context_length)
    srv = SGLangStandin(load_backend("embedded", args.model), host=args.host, port=args.port, modes=modes,
                        incremental_streaming_output=args.incremental_streaming_output).start()
    print(f"SGLang stand-in (test server) for {args.model} on {srv.url}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
