"""Drives /v1 with the official openai package; prints one JSON line per step."""
import json
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)


def emit(step, value):
    print(json.dumps({"step": step, "value": value}), flush=True)


emit("models", [m.id for m in client.models.list().data])

r = client.chat.completions.create(
    model="claude-code",
    user="oa-sync",
    messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": "Hello from openai"},
    ],
)
emit("sync", r.model_dump())

r = client.chat.completions.create(
    model="claude-opus-test-model",
    user="oa-sync",
    messages=[{"role": "user", "content": [{"type": "text", "text": "[[recall]]"}]}],
)
emit("recall", r.model_dump())

stream = client.chat.completions.create(
    model="claude-code",
    messages=[{"role": "user", "content": "[[slow 4 20]]"}],
    stream=True,
    stream_options={"include_usage": True},
    extra_headers={"X-Session": "oa-stream"},
)
chunks = [c.model_dump() for c in stream]
emit("stream", chunks)

try:
    client.chat.completions.create(
        model="claude-code", user="../escape", messages=[{"role": "user", "content": "hi"}]
    )
    emit("bad_name", None)
except openai.APIStatusError as e:
    emit("bad_name", e.status_code)

try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
    emit("bad_key", None)
except openai.APIStatusError as e:
    emit("bad_key", e.status_code)
