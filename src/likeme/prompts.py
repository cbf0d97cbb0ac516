"""The chat format, written once: how a conversation becomes tokens, for training and for use.

Every path renders from here: the voice's training examples (`data.examples`), `likeme chat` and
`likeme serve` (`use.generate`), the reward and DPO prompts, and the chat template and Ollama template
that `likeme export` writes (`use.export`). litgpt's `prompts.py` is the model: a prompt style and its
stop tokens in one place.

- a person's **turn**: one speaker's consecutive messages merged (`Turn`);
- the **system turn** names the person the model speaks as (`system_prompt`), the same words at
  training and at inference time;
- **roles and names**: NAME's turns are `assistant`, everybody else's `user`, prefixed "Name: " when
  more than two people are in the chat (`chat_messages`);
- the **transcript line** "Name: text" (`transcript_line`), for `--format transcript`;
- the **instruct format**: the model's chat template, or Alpaca blocks without one (`render_instruct`);
- the **end of a turn**: the token that closes it (`end_of_turn_id`), which training labels and
  generation stops at.
"""
from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Sequence

from likeme.errors import LikemeError

IGNORE = -100  # the label PyTorch's cross-entropy skips: every token that is not the speaker's own


@dataclass
class Turn:
    """One speaker's consecutive messages, merged: Turn("Ana", "hi\\nare you up?")."""

    author: str
    text: str


def system_prompt(name: str, recalled: Sequence[str] = ()) -> str:
    """The system turn of every persona example, and of `likeme chat`: the same words at training
    and at inference time (SmolLM2's template otherwise inserts its own "helpful assistant" prompt).
    `recalled`: things NAME said before (`recall.py`), listed after it, one per line.

    Example: system_prompt("Ana", ["pizza obv"]) ->
      "You are Ana. Write Ana's next message in this chat, in Ana's own words and style.\n"
      "Things Ana has said before:\n- pizza obv"
    """
    text = f"You are {name}. Write {name}'s next message in this chat, in {name}'s own words and style."
    if recalled:
        text += f"\nThings {name} has said before:\n" + "\n".join(f"- {' / '.join(r.splitlines())}" for r in recalled)
    return text


def chat_messages(context: list[Turn], name: str, prefix_names: bool, recalled: Sequence[str] = ()) -> list[dict]:
    """Turns -> chat-template messages from NAME's point of view.

    Example (three people, NAME="Ana"): [Turn(Sam, "hi"), Turn(Ana, "yo"), Turn(Bo, "ok")] ->
      [system, {"user", "Sam: hi"}, {"assistant", "yo"}, {"user", "Bo: ok"}]
    """
    out = [{"role": "system", "content": system_prompt(name, recalled)}]
    for t in context:
        if t.author == name:
            out.append({"role": "assistant", "content": t.text})
        else:
            out.append({"role": "user", "content": f"{t.author}: {t.text}" if prefix_names else t.text})
    return out


_END_OF_TURN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> (its size, the id)


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn in the tokenizer's chat template: `<|im_end|>`
    (ChatML: SmolLM2, Qwen), `<|eot_id|>` (Llama 3), `<end_of_turn>` (Gemma), else the EOS token.
    Looked up once per tokenizer (and again if tokens are added to it): `get_vocab()` builds a dict of
    the whole vocabulary, ~0.1 s for SmolLM2's 49,152 entries, which was most of a dataset's build time."""
    size = len(tokenizer)
    try:
        known = _END_OF_TURN.get(tokenizer)
    except TypeError:  # a tokenizer that cannot be weakly referenced: look it up every time
        known = None
    if known is not None and known[0] == size:
        return known[1]
    vocab = tokenizer.get_vocab()
    found = next((vocab[tok] for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>") if tok in vocab),
                 tokenizer.eos_token_id)
    try:
        _END_OF_TURN[tokenizer] = (size, found)
    except TypeError:
        pass
    return found


def token_ids(x) -> list[int]:
    """Token ids from what a tokenizer returns: transformers 5 gives a BatchEncoding from
    apply_chat_template(tokenize=True), 4.x a list. Example: {"input_ids": [1, 2]} -> [1, 2]"""
    return list(x["input_ids"] if hasattr(x, "keys") else x)


def transcript_line(author: str, text: str) -> str:
    """One message as `--format transcript` writes it. Example: ("Ana", "hi") -> "Ana: hi\n" """
    return f"{author}: {text}\n"


# Instruction tuning: (role, content) messages -> an example whose loss is on the assistant's turns only

ALPACA = ("Below is an instruction that describes a task{with_input}. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\n{instruction}\n\n{input}### Response:\n")  # Taori et al. 2023


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The Alpaca prompt, for a model without a chat template.

    Example: alpaca_prompt("Add 2 and 3.") -> "Below is an instruction ... ### Instruction:\nAdd 2 and 3.\n\n### Response:\n"
    """
    return ALPACA.format(with_input=", paired with an input that provides further context" if input else "",
                         instruction=instruction.strip(), input=f"### Input:\n{input.strip()}\n\n" if input else "")


def render_instruct(tokenizer, messages: list[dict], *, generation_prompt: bool) -> list[int]:
    """Messages as the model reads them: its chat template, or Alpaca blocks when it has none (a system
    turn first as a line; each user turn an instruction, each assistant turn its response + EOS)."""
    if getattr(tokenizer, "chat_template", None):
        messages = messages or [{"role": "user", "content": ""}]  # the assistant opens: an empty instruction
        return token_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True))
    text, eos = "", tokenizer.eos_token or ""
    for m in messages:
        if m["role"] == "system":
            text += m["content"].strip() + "\n\n"
        elif m["role"] == "user":
            text += alpaca_prompt(m["content"])
        else:
            text += m["content"].strip() + eos + "\n\n"
    if generation_prompt and messages and messages[-1]["role"] == "assistant":
        raise LikemeError("an Alpaca prompt ends with an instruction, not a response")
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# -- prompting a voice: history -> turns -> the ids the model reads (chat, serve, the report, the audit)


def as_turns(history: Sequence, name: str, partner: str):
    """History -> merged `Turn`s. Plain strings are the partner's; `(author, text)` pairs and Turns as they are.

    Example (name Ana, partner Sam): ["hi", "you there?", ("Ana", "yes")]
      -> [Turn("Sam", "hi\\nyou there?"), Turn("Ana", "yes")]   (one author's run of messages is one turn,
      as in `data.examples.session_turns`)
    """
    turns: list[Turn] = []
    for item in history:
        if isinstance(item, str):
            author, text = partner, item
        elif isinstance(item, Turn):
            author, text = item.author, item.text
        else:
            try:
                author, text = item
            except (TypeError, ValueError):
                raise LikemeError(f"a history item is a message string or an (author, text) pair, not {item!r}") from None
        if not str(text).strip():
            continue
        if turns and turns[-1].author == author:
            turns[-1] = Turn(author, turns[-1].text + "\n" + str(text))
        else:
            turns.append(Turn(str(author), str(text)))
    return turns


def from_openai(messages: Sequence[tuple[str, str | None, str]], name: str, partner: str) -> tuple[list[tuple[str, str]], str | None]:
    """OpenAI chat messages as (role, name, text) -> (the history as (author, text) pairs, the extra system
    text): an assistant message is NAME's, a user message its `name`'s, else the partner's; system and
    developer messages are added to the system turn. The same reading as `jinja_template`'s.

    Example (NAME Ana, partner Sam): [("system", None, "be brief"), ("user", None, "hi"), ("assistant", None, "yo"),
      ("user", "Bo", "ok")] -> ([("Sam", "hi"), ("Ana", "yo"), ("Bo", "ok")], "be brief")
    """
    history, system = [], []
    for role, author, text in messages:
        if role in ("system", "developer"):
            system.append(text)
        elif role == "assistant":
            history.append((name, text))
        else:
            author = author or partner
            if author == name:
                raise LikemeError(f"a user message is named {name!r}, whom the voice speaks as: name the other "
                                  "people, or send NAME's messages as assistant")
            history.append((author, text))
    return history, "\n".join(s for s in system if s.strip()) or None


def render_prompt(tokenizer, turns: Sequence[Turn], name: str, *, format: str = "persona",
                  recalled: Sequence[str] = (), system: str | None = None) -> list[int]:
    """The ids a voice reads before NAME's next message, exactly as its training examples render the
    context (`data.examples.persona_example`, `transcript_dataset`, `instruct_example`).

    persona: NAME's system turn, the chat template and its generation prompt; names before the others'
      messages ("Bo: ok") only when more than one other person speaks. Example (ChatML, as Ana): [Sam "hi"]
      -> ids of "<|im_start|>system\nYou are Ana. ...<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    transcript: the EOS that starts a session, then "Name: message" lines, then "NAME:".
      Example: [Sam "hi"] -> ids of "<eos>Sam: hi\nAna:"
    instruct: the chat template without a persona (Alpaca blocks for a model without one).
    `system`: more instructions, after the training system turn (persona), as a first line (transcript).
    """
    if format == "instruct":
        msgs = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
        msgs += [{"role": "assistant" if t.author == name else "user", "content": t.text} for t in turns]
        return render_instruct(tokenizer, msgs, generation_prompt=True)
    if format == "persona":
        msgs = persona_messages(turns, name, recalled=recalled, system=system)
        try:
            return token_ids(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True))
        except Exception as e:  # jinja's TemplateError, or a template that rejects a system turn
            raise LikemeError(f"its chat template cannot render the chat ({str(e).splitlines()[0]}): "
                              "train with --format transcript for this model") from e
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if system and system.strip():
        ids += tokenizer(system.strip() + "\n", add_special_tokens=False)["input_ids"]
    for t in turns:  # one line at a time, tokenized exactly as in training
        ids += tokenizer(transcript_line(t.author, t.text), add_special_tokens=False)["input_ids"]
    return ids + tokenizer(f"{name}:", add_special_tokens=False)["input_ids"]


def persona_messages(turns: Sequence[Turn], name: str, *, recalled: Sequence[str] = (),
                     system: str | None = None) -> list[dict]:
    """The messages a persona voice reads before NAME's next message (`render_prompt` renders them with the
    chat template): names before the others' messages only when more than one other person speaks.

    Example (as Ana): [Sam "hi"] -> [{"system", "You are Ana. ..."}, {"user", "hi"}];
      [Sam "hi", Bo "yo"] -> [{"system", ...}, {"user", "Sam: hi"}, {"user", "Bo: yo"}]
    """
    prefix = len({t.author for t in turns if t.author != name}) > 1
    msgs = chat_messages(list(turns), name, prefix_names=prefix, recalled=recalled)
    if system and system.strip():
        msgs[0] = {"role": "system", "content": msgs[0]["content"] + "\n" + system.strip()}
    return msgs


# -- the same format for other engines: what `likeme export` ships


def jinja_template(base_template: str, name: str, partner: str) -> str:
    """The base model's Jinja chat template with the voice's prompt conventions in front, as
    `render_prompt` and `from_openai` apply them: the system turn is NAME's training one, with the chat's own system
    messages (if any) added after it on new lines; a user message is written by its `name`, else by
    `partner`, and when more than one person other than NAME speaks each of their messages starts with
    "Author: " (as `chat_messages` writes group chats)."""
    return (
        "{%- set ns = namespace(authors=[], extra=[], out=[]) -%}"
        "{%- for m in messages -%}"
        "{%- if m['role'] in ('system', 'developer') -%}{%- set ns.extra = ns.extra + [m['content']] -%}"
        "{%- elif m['role'] == 'user' -%}"
        "{%- set who = m['name'] if m['name'] is defined and m['name'] else " + json.dumps(partner) + " -%}"
        "{%- if who not in ns.authors -%}{%- set ns.authors = ns.authors + [who] -%}{%- endif -%}"
        "{%- endif -%}{%- endfor -%}"
        "{%- set extra = ns.extra|join('\n')|trim -%}"
        "{%- set ns.out = [{'role': 'system', 'content': " + json.dumps(system_prompt(name)) +
        " + ('\n' + extra if extra else '')}] -%}"
        "{%- for m in messages -%}"
        "{%- if m['role'] == 'user' and ns.authors|length > 1 -%}"
        "{%- set who = m['name'] if m['name'] is defined and m['name'] else " + json.dumps(partner) + " -%}"
        "{%- set ns.out = ns.out + [{'role': 'user', 'content': who + ': ' + m['content']}] -%}"
        "{%- elif m['role'] in ('user', 'assistant') -%}"
        "{%- set ns.out = ns.out + [{'role': m['role'], 'content': m['content']}] -%}"
        "{%- endif -%}{%- endfor -%}"
        "{%- set messages = ns.out -%}" + base_template)


def ollama_template(name: str) -> str:
    """The Go template of an Ollama Modelfile that writes the ChatML prompt the voice was trained on:
    NAME's training system turn (with the chat's own system messages added after it on new lines), then
    the messages, then the assistant's turn. Ollama's messages have no `name`: in a group chat the
    content carries "Bo: cake?", as training wrote it."""
    return ("<|im_start|>system\n" + system_prompt(name).replace("{{", "") +
            '{{ range .Messages }}{{ if eq .Role "system" }}\n{{ .Content }}{{ end }}{{ end }}<|im_end|>\n'
            '{{ range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
            "{{ end }}{{ end }}<|im_start|>assistant\n")
