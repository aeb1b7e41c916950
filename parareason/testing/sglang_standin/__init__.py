"""SGLang stand-in: a small TEST server that speaks SGLang's native HTTP API.

SGLang itself needs CUDA, so the SGLang client is tested against this: a real
HTTP server on 127.0.0.1 (FastAPI + uvicorn in a background thread) with the
same request, response, streaming and abort protocol as `sglang.launch_server`
(see docs/sglang.md and the fact sheet it cites), backed by ANY `Backend`: a
scripted test double or the embedded transformers engine. It is not a
production server and is never picked by the runtime.

What it mimics:
* `POST /generate` with `input_ids` (or `text`), `sampling_params`, `rid`,
  `stream`, `return_logprob`, `top_logprobs_num`: a stream of
  `data: {...}\\n\\n` chunks (cumulative snapshots by default, deltas with
  `incremental_streaming_output=True`) ending with `data: [DONE]\\n\\n`, or one
  JSON object when not streaming. `max_new_tokens: 0` only warms the cache.
* `meta_info` with `id`, `finish_reason` (SGLang's objects), `prompt_tokens`,
  `completion_tokens`, `cached_tokens` (from a radix record of every token
  sequence seen, capped at prompt_tokens - 1 like SGLang), logprob triples.
* `POST /abort_request` gated as SGLang gates it (an exact, known rid, forwarded
  once, then a prefix match in the scheduler; `abort_all`), `GET /health`,
  `/model_info`, `/server_info` (and their old names), `/tokenize`,
  `/detokenize`, `/flush_cache`, `/v1/models`.
* SGLang's error shapes (HTTP 200 + error chunk while streaming, 400 otherwise)
  and abort chunks ("Aborted"; "Abort in waiting queue" without usage).
* A client that hangs up aborts its request (a streaming one 2 s later, as
  SGLang's `create_abort_task`; the request runs on meanwhile).
* `StandinModes` (modes.py): context limit (the tokenizer manager's and the
  scheduler's checks), queue delay and retraction, seeds
  ignored unless deterministic, temperature-scaled logprobs, the dispatch
  window, the disconnect abort's delay, an admin key, router mode (and an older
  router's `/list_workers`), dp size.

Fault injection (`StandinFaults`, mutable while running): HTTP 500 for the next
N requests, drop the connection after K streamed tokens, stall (send nothing)
after K tokens, a /health status.

Modules: `server.py` (lifecycle, engine thread), `state.py` (what routes and
engine share), `app.py` (routes), `admission.py` (dispatch, queue, abort gate),
`responses.py` (streaming and one-shot answers), `wire.py` (the wire format),
`sampling.py` (seeds, logprob scaling), `modes.py`, `faults.py`, `radix.py`.

Run one by hand:  python -m parareason.testing.sglang_standin --model smollm2-135m --port 30000
"""
from parareason.testing.sglang_standin.faults import StandinFaults
from parareason.testing.sglang_standin.modes import StandinModes
from parareason.testing.sglang_standin.radix import RadixRecord
from parareason.testing.sglang_standin.server import SGLangStandin

__all__ = ["SGLangStandin", "StandinFaults", "StandinModes", "RadixRecord"]
