#!/usr/bin/env python3
"""The official `openai` Python client against a running `lorac serve` (tests/cli/serve.sh runs it when
the package is importable, else skips it): the client parses every response shape lorac sends.
Usage: serve_openai_check.py BASE_URL ADAPTER  (BASE_URL like http://127.0.0.1:8080/v1)
Checks: models lists the adapter; chat and completions, streamed and not, give the same greedy text;
an unknown model raises NotFoundError (404). Exit 0 when all hold."""
import sys

from openai import NotFoundError, OpenAI

base, adapter = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base, api_key="unused")
fails = []
ids = [m.id for m in client.models.list()]
if adapter not in ids:
    fails.append(f"models: {ids} lacks {adapter}")
msgs = [{"role": "user", "content": "hello there"}]
whole = client.chat.completions.create(model=adapter, messages=msgs, max_tokens=12, temperature=0)
streamed = "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(model=adapter, messages=msgs, max_tokens=12, temperature=0, stream=True)
                   if c.choices)
if whole.choices[0].message.content != streamed or whole.usage.completion_tokens < 1:
    fails.append(f"chat: {whole.choices[0].message.content!r} streamed as {streamed!r}")
whole = client.completions.create(model=adapter, prompt="hello there", max_tokens=12, temperature=0)
streamed = "".join(c.choices[0].text for c in
                   client.completions.create(model=adapter, prompt="hello there", max_tokens=12, temperature=0, stream=True))
if whole.choices[0].text != streamed:
    fails.append(f"completions: {whole.choices[0].text!r} streamed as {streamed!r}")
try:
    client.completions.create(model="no-such-adapter", prompt="x")
    fails.append("an unknown model did not raise")
except NotFoundError:
    pass
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
