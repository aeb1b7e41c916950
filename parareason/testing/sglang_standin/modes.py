"""Server behaviours of SGLang 0.5.23 the stand-in can switch on (`srv.modes`).

Each mode mirrors one place of SGLang's source (paths under `sglang/srt/`):

* `context_length`: `managers/tokenizer_manager.py` `_validate_one_request`
  refuses input >= context length and input + max_new_tokens > context length
  (unless `allow_auto_truncate`, which caps max_new_tokens instead). The
  refusal is a ValueError: while streaming it arrives as HTTP 200 with an
  `{"error": {...}}` chunk and `[DONE]` (`entrypoints/http_server.py`
  `serve_generate_request`), otherwise as HTTP 400 `{"error": {"message"}}`.
  The scheduler checks again (`managers/scheduler.py:3246-3254`,
  `managers/utils.py:272-285`): an input >= `max_req_input_len` (`max_req_len -
  5`, `max_req_len = min(context_length - 1, kv_pool_tokens - 1)`,
  `managers/tp_worker.py:568-572`) is aborted: its input becomes one stub token
  that is prefilled (`managers/schedule_batch.py:2221-2238`
  `set_finish_with_abort`), and the stream's one chunk carries that token, no
  logprobs, `prompt_tokens` 1 and finish_reason `{"type": "abort", "message":
  "Input length (N tokens) exceeds the maximum allowed length (M tokens). ...",
  "status_code": 400, "err_type": "BadRequestError"}`
  (`managers/tokenizer_manager.py:1891-1922` yields it while streaming, raises
  a ValueError otherwise). Before that, max_new_tokens is quietly capped to
  `max_req_len - input - 1` (`managers/scheduler.py:2710-2717`).
* `queue_delay_s`: a request waits in the scheduler's queue (or is retracted)
  and its stream carries no byte meanwhile; aborted there, its final chunk is
  `{"type": "abort", "message": "Abort in waiting queue"}` without usage
  (`tokenizer_manager.py` `_handle_abort_req`). `pause_after_tokens` /
  `pause_s`: a running request is retracted, then resumes.
* `deterministic_inference`: `sampling_seed` acts only with
  `--enable-deterministic-inference` (`sampling/sampling_batch_info.py`);
  otherwise the stand-in replaces it by a fresh random seed per request.
* `original_logprob`: logprobs are `log_softmax(logits / T)` unless
  `SGLANG_RETURN_ORIGINAL_LOGPROB=1`, and unscaled for greedy requests
  (`layers/sampler.py`). The stand-in rescales its backend's T=1 logprobs over
  the reported alternatives (exact when they hold all the mass).
* `dispatch_window_s`: the time between the tokenizer manager registering a rid
  and the scheduler holding the request. `/abort_request` forwards only an rid
  it knows exactly, only once (`abort_sent`); the scheduler then aborts every
  request whose rid starts with it (`managers/scheduler.py` `abort_request`).
  An abort inside the window is lost, and the disconnect abort after it skipped.
* `disconnect_abort_delay_s`: a streaming client's hang-up aborts its request
  only this long after (`create_abort_task` sleeps 2 s,
  `managers/tokenizer_manager.py:2427-2438`; see `admission.py`).
* `admin_api_key`: `/abort_request` is `ADMIN_OPTIONAL` (`utils/auth.py`): with
  an admin key set, it needs `Authorization: Bearer <admin key>`, else 401.
* `router`: an sglang-router (model gateway) front: `/health` is its liveness,
  always 200; `/abort_request` and `/tokenize` are not forwarded (404); `GET
  /workers` lists `router_workers` with `is_healthy` (`router_legacy`: an older,
  actix-web router without it, whose `GET /list_workers` gives `{"urls": [...]}`;
  newer ones keep that route too, `sgl-router/src/server.rs`); `healthy_workers=False`
  makes `/readiness` and the forwarded endpoints answer 503
  (docs/advanced_features/sgl_model_gateway.md in the SGLang repository).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StandinModes:
    context_length: int | None = None  # None: no limit
    kv_pool_tokens: int | None = None  # None: more than the context needs
    allow_auto_truncate: bool = False
    queue_delay_s: float = 0.0  # every request waits this long in the queue before it runs
    pause_after_tokens: int | None = None  # retract a running request after this many tokens ...
    pause_s: float = 0.0  # ... for this long
    deterministic_inference: bool = True  # False: sampling_seed is ignored, as by default on SGLang
    original_logprob: bool = True  # False: temperature-scaled logprobs, as by default on SGLang
    dispatch_window_s: float = 0.0  # rid known to the tokenizer manager, not yet to the scheduler
    disconnect_abort_delay_s: float = 2.0  # create_abort_task's sleep (tokenizer_manager.py:2430)
    admin_api_key: str | None = None
    router: bool = False
    healthy_workers: bool = True  # router mode: False = every worker is down
    router_workers: tuple[str, ...] = ()  # router mode: what GET /workers lists
    router_legacy: bool = False  # router mode: no GET /workers, only GET /list_workers
    dp_size: int = 1  # reported by /server_info (the stand-in itself has one "rank")

    @property
    def max_req_len(self) -> int | None:
        """`managers/tp_worker.py:568-571`: min(context_len - 1, KV pool - 1)."""
        if self.context_length is None:
            return None
        return min(self.context_length, self.kv_pool_tokens or self.context_length) - 1

    @property
    def max_req_input_len(self) -> int | None:
        """`managers/tp_worker.py:572`, as `/server_info` reports it."""
        return None if self.max_req_len is None else self.max_req_len - 5

    @classmethod
    def real_defaults(cls, **changes: object) -> "StandinModes":
        """What a `sglang.launch_server` started without flags does: seeds ignored, scaled logprobs."""
        return cls(**{"deterministic_inference": False, "original_logprob": False, **changes})  # type: ignore[arg-type]
