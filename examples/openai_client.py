"""Talk to `likeme serve` with the official `openai` client: a plain reply, a streamed one, and a reply
constrained to a JSON schema.

    likeme serve runs/robin-voice &                 # http://127.0.0.1:8000
    .venv/bin/python examples/openai_client.py      # --url, --model, --api-key
"""
import argparse
import json

from openai import OpenAI

ap = argparse.ArgumentParser()
ap.add_argument("--url", default="http://127.0.0.1:8000/v1")
ap.add_argument("--model", default=None, help="default: the first voice the server lists")
ap.add_argument("--api-key", default="unused")
args = ap.parse_args()

client = OpenAI(base_url=args.url, api_key=args.api_key)
voices = [m for m in client.models.list().data if m.likeme["kind"] == "voice"]
model = args.model or voices[0].id
print(f"models: {[m.id for m in client.models.list().data]}; talking to {model}")
chat = [{"role": "user", "content": "what are you doing this weekend?"}]

plain = client.chat.completions.create(model=model, messages=chat, seed=1, max_tokens=48)
print(f"\n[plain] {plain.choices[0].message.content!r}  finish={plain.choices[0].finish_reason} usage={plain.usage}")

print("\n[stream] ", end="")
for chunk in client.chat.completions.create(model=model, messages=chat, seed=2, max_tokens=48, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="|", flush=True)  # | between the pieces as they arrive
print()

schema = {"type": "object", "additionalProperties": False, "required": ["plan", "excited"],
          "properties": {"plan": {"type": "string", "maxLength": 60}, "excited": {"type": "boolean"}}}
r = client.chat.completions.create(model=model, messages=chat, seed=3, max_tokens=64, response_format={
    "type": "json_schema", "json_schema": {"name": "weekend", "schema": schema, "strict": True}})
print(f"\n[json_schema] {r.choices[0].message.content}")
print(f"parsed: {json.loads(r.choices[0].message.content)}")
