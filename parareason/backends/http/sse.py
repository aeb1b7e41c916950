"""Server-sent events: the `data:` payloads of a `text/event-stream` response, fed in
chunks whose boundaries may fall anywhere (SGLang's /generate and vLLM's completions
both stream this way)."""
from __future__ import annotations

class SSEParser:
    """Incremental `data:` event parser; chunk boundaries may fall anywhere."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, text: str) -> list[str]:
        """Add received text; return the payloads of all events now complete."""
        self._buf += text.replace("\r\n", "\n")
        payloads: list[str] = []
        while "\n\n" in self._buf:
            event, self._buf = self._buf.split("\n\n", 1)
            data = [line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:")]
            if data:
                payloads.append("\n".join(data))
        return payloads

    @property
    def pending(self) -> str:
        return self._buf
