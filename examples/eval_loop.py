"""Evaluate policies on a dataset with one loaded model (the README's ten-line loop).

    python examples/eval_loop.py examples/prompts.jsonl smollm2-135m
"""
import json
import sys

import parareason

args = sys.argv[1:] + [None] * 3
dataset = args[0] or "examples/prompts.jsonl"
model = args[1] or "qwen2.5-0.5b-coder"
backend = args[2] or "embedded"  # or "sglang" (add urls=[...])

rows = [json.loads(line) for line in open(dataset) if line.strip()][:20]
engine = parareason.Engine(model=model, backend=backend)  # loads the model once
for policy in ["sc", "ffs"]:
    results = engine.run(rows, policy=policy, n=4, max_new_tokens=256)
    accuracy = sum(bool(r.correct) for r in results) / len(results)
    tokens = sum(r.usage["generated_tokens"] for r in results)
    print(f"{policy}: accuracy {accuracy:.0%}, {tokens} generated tokens")
engine.close()
