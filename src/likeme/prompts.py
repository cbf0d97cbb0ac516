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


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn in the tokenizer's chat template: `<|im_end|>`
    (ChatML: SmolLM2, Qwen), `<|eot_id|>` (Llama 3), `<end_of_turn>` (Gemma), else the EOS token."""
    vocab = tokenizer.get_vocab()
    for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        if tok in vocab:
            return vocab[tok]
    return tokenizer.eos_token_id


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
