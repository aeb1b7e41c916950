"""`Tokenizer` (base.py protocol) over a Hugging Face tokenizer directory."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence


class HFTokenizer:
    """Thin wrapper: plain-text encode (no BOS/special tokens added), chat template ids.

    `encode` adds no special tokens because the runtime encodes pieces that it appends
    to existing token paths (join text, protocol markers); the chat template supplies
    the special tokens of a prompt. `decode` drops special tokens (e.g. a final
    <|im_end|>) so thread texts hold only what the model wrote.
    """

    def __init__(self, model_dir: str | Path, name: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        self.hf = AutoTokenizer.from_pretrained(str(model_dir))
        eos: set[int] = set()
        if self.hf.eos_token_id is not None:
            eos.add(int(self.hf.eos_token_id))
        gen_cfg = model_dir / "generation_config.json"
        if gen_cfg.is_file():
            value = json.loads(gen_cfg.read_text()).get("eos_token_id")
            eos.update(int(v) for v in (value if isinstance(value, list) else [value]) if v is not None)
        self.eos_token_ids: frozenset[int] = frozenset(eos)
        # Identifies the vocabulary (two models with the same name here share token ids).
        vocab = json.dumps(sorted(self.hf.get_vocab().items()), ensure_ascii=False).encode()
        self.vocab_hash = hashlib.sha256(vocab).hexdigest()[:12]
        self.name = name or f"{model_dir.name}:{self.vocab_hash}"

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def decode_raw(self, ids: Sequence[int]) -> str:
        """Decode keeping special tokens (stop strings are matched on this text)."""
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        text = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        return list(self.hf.encode(text, add_special_tokens=False))
