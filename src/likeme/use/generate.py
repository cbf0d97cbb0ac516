"""Talking to a trained voice: a run folder -> `Voice`, which replies as NAME or continues raw text.

The prompt is built exactly as at training time (`datasets.chat_messages` + the run's chat template +
the generation prompt), and a reply ends where NAME's turn ends: on the end-of-turn token, the eos,
or `<|im_start|>` (a model that starts a new turn has finished its own), at the latest after
`max_new_tokens`. The text that comes back never holds template tokens.

    >>> import likeme
    >>> ana = likeme.load("runs/ana-voice")           # run.yaml says  as: Ana, partner: Sam
    >>> ana.name, ana.partner
    ('Ana', 'Sam')
    >>> ana.reply(["are you coming tonight?"], seed=1)            # plain strings are Sam's messages (replies
    ...                                                          # here are illustrations, not real outputs)
    "yes!! I'll be there around 8"
    >>> ana.reply([("Sam", "cake?"), ("Ana", "sure"), ("Sam", "chocolate or lemon?")], do_sample=False)
    'chocolate obviously'
    >>> ana.reply(["hi"], num_return_sequences=3, seed=2)         # three samples
    ['heyy', 'hi :)', 'hey! how are you']
    >>> ana.reply(["hi"], stream=lambda piece: print(piece, end="", flush=True))   # prints as it goes
    >>> ana.generate("Sam: are you up?\\nAna:", max_new_tokens=12)   # raw text, no chat template
    ' yes, why'

What comes back is a `Generation`: a str that also carries `.token_ids` (the generated ids, the stop
token included) and `.finish` ("stop": the turn ended; "length": cut at max_new_tokens).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from likeme.errors import LikemeError

# Text that must never reach the user, even when a tokenizer does not mark it special.
TEMPLATE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")
CONTEXT_TURNS = 8  # turns of history in the prompt when run.yaml does not say: the persona dataset's default


@dataclass
class Sampling:
    """How to pick tokens. The same names as the CLI flags (`--top-k` is `top_k`); help written once here.

    The defaults are llama.cpp's and transformers' well-tried ones, chosen for short chat messages.
    """

    temperature: float = field(default=0.8, metadata={  # llama.cpp's default: lively but on topic
        "help": "Randomness: lower is safer and duller, higher wilder (0 = always the likeliest token)."})
    top_k: int = field(default=50, metadata={  # transformers' default (llama.cpp: 40)
        "help": "Sample only among the K likeliest tokens (0 = no limit)."})
    top_p: float = field(default=0.95, metadata={  # llama.cpp's default: cuts the long tail of junk tokens
        "help": "Sample only among the likeliest tokens that together make up this probability."})
    min_p: float | None = field(default=None, metadata={  # off as in transformers; llama.cpp uses 0.05
        "help": "Drop tokens less likely than this fraction of the likeliest one (arXiv:2407.01082); "
                "try 0.05."})
    repetition_penalty: float = field(default=1.1, metadata={  # llama.cpp's long-time default: small
        # models trained on chats loop ("haha haha haha") without it; the CTRL paper's 1.2 distorts words.
        "help": "Make tokens already in the chat less likely (1 = off)."})
    max_new_tokens: int = field(default=128, metadata={  # a chat message is short; caps a runaway
        "help": "Stop a reply after this many tokens at most."})
    do_sample: bool = field(default=True, metadata={
        "flag": "sample", "help": "Sample (the default), or with --no-sample always take the likeliest token."})
    seed: int | None = field(default=None, metadata={
        "help": "Random seed: the same seed, settings and chat give the same reply."})
    num_return_sequences: int = field(default=1, metadata={
        "help": "Write this many different replies (no streaming then)."})

    def updated(self, **changes: Any) -> Sampling:
        """A copy with `changes`, checked: `Sampling().updated(top_k=0).top_k == 0`; None leaves a value as it is
        (so CLI flags that were not given change nothing). A bad name or value raises LikemeError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = [k for k in changes if k not in names]
        if unknown:
            raise LikemeError(f"unknown sampling setting {unknown[0]!r}: use one of {', '.join(sorted(names))}")
        new = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        new.check()
        return new

    def check(self) -> None:
        """Raise LikemeError for a value generate() would reject or silently misuse."""
        bad = [
            (self.temperature < 0, "temperature must be 0 or more"),
            (self.top_k < 0, "top_k must be 0 (no limit) or more"),
            (not 0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.min_p is not None and not 0 <= self.min_p <= 1, "min_p must be in [0, 1]"),
            (self.repetition_penalty <= 0, "repetition_penalty must be more than 0 (1 = off)"),
            (self.max_new_tokens < 1, "max_new_tokens must be at least 1"),
            (self.num_return_sequences < 1, "num_return_sequences must be at least 1"),
            (self.num_return_sequences > 1 and self.greedy,
             "num_return_sequences > 1 needs sampling: greedy decoding gives the same reply every time"),
        ]
        for is_bad, why in bad:
            if is_bad:
                raise LikemeError(why)

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0  # llama.cpp also reads temperature 0 as greedy

    def generate_kwargs(self) -> dict:
        """The keyword arguments of `model.generate`; sampling knobs only when sampling (transformers warns
        about them otherwise). Example: Sampling(do_sample=False).generate_kwargs() ->
        {'do_sample': False, 'max_new_tokens': 128, 'repetition_penalty': 1.1, 'num_return_sequences': 1}"""
        out: dict = {"do_sample": not self.greedy, "max_new_tokens": self.max_new_tokens,
                     "repetition_penalty": self.repetition_penalty, "num_return_sequences": self.num_return_sequences}
        if not self.greedy:
            # min_p=None too: a kwarg of generate() wins over the model's generation_config, None included,
            # so a checkpoint's own sampling defaults never sneak in.
            out.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p)
        return out


class Generation(str):
    """A generated text that also says how it was made: `.token_ids` (the new ids, the stop token included)
    and `.finish`: "stop" (the turn or text ended) or "length" (cut at max_new_tokens).

    Example: Generation("hey", token_ids=(88, 2), finish="stop") == "hey"
    """

    token_ids: tuple[int, ...]
    finish: str
    candidates: tuple[tuple[str, float], ...]  # best-of-n: every sampled reply with its judge score

    def __new__(cls, text: str, token_ids: Iterable[int] = (), finish: str = "stop"):
        self = super().__new__(cls, text)
        self.token_ids = tuple(token_ids)
        self.finish = finish
        self.candidates = ()
        return self


def _as_turns(history: Sequence, name: str, partner: str):
    """History -> merged `Turn`s. Plain strings are the partner's; `(author, text)` pairs and Turns as they are.

    Example (name Ana, partner Sam): ["hi", "you there?", ("Ana", "yes")]
      -> [Turn("Sam", "hi\\nyou there?"), Turn("Ana", "yes")]   (one author's run of messages is one turn,
      as in `datasets.session_turns`)
    """
    from likeme.prompts import Turn

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


class Voice:
    """A model that speaks as `name` to `partner`. Make one with `load(run)`.

    Attributes: `name` (who it speaks as, run.yaml `as:`), `partner` (who you play, run.yaml `partner:`),
    `run` (the folder or model name it was loaded from), `model`, `tokenizer`, `sampling` (the defaults
    every call starts from; keyword arguments of `reply`/`generate` override them for that call).
    """

    def __init__(self, model, tokenizer, *, name: str | None, partner: str | None, run: str,
                 format: str | None = None, context_turns: int = CONTEXT_TURNS, sampling: Sampling | None = None,
                 recall: Callable[[str], list[str]] | None = None):
        from likeme.prompts import end_of_turn_id

        self.model, self.tokenizer = model, tokenizer
        # text -> NAME's past messages most like it (recall.Recall), shown in the system turn as in training
        self.recall = recall
        self.name, self.partner, self.run = name, partner or "You", run
        # What the run was trained on (run.yaml config.format): the chat template, or "Name: message" lines.
        # A model without a chat template can only be prompted with lines.
        # "instruct" (likeme train instruct): an assistant, the chat template without a persona (Alpaca blocks
        # for a model without one).
        self.format = format or ("persona" if getattr(tokenizer, "chat_template", None) else "transcript")
        if self.format not in ("persona", "transcript", "instruct"):
            raise LikemeError(f"{run}: unknown format {self.format!r} in run.yaml: persona, transcript or instruct")
        if self.format == "instruct":
            self.name = name or "Assistant"
        self.context_turns = context_turns
        self.sampling = sampling or Sampling()
        vocab = tokenizer.get_vocab()
        special = [vocab[t] for t in ("<|endoftext|>",) if t in vocab]  # a document ended: nothing more to say
        ends = [end_of_turn_id(tokenizer), tokenizer.eos_token_id, *special, *_ids_of(model.generation_config.eos_token_id)]
        # Raw text stops where the text ends; a reply also where a new turn starts.
        self.text_stop_ids = _unique(ends)
        self.reply_stop_ids = _unique(ends + [vocab[t] for t in ("<|im_start|>",) if t in vocab])
        self.pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, self.text_stop_ids[0]) if i is not None)
        self._markers = _unique([*TEMPLATE_MARKERS, *(tokenizer.convert_ids_to_tokens(self.reply_stop_ids))])
        config = getattr(model, "config", None)
        limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
        self.context_window = min((int(x) for x in limits if x and x < 1_000_000), default=None)

    def __repr__(self) -> str:
        return f"Voice(name={self.name!r}, partner={self.partner!r}, run={self.run!r}, device='{self.model.device}')"

    precision = None  # the precision.Choice it was loaded with (set by load)

    # -- prompts ---------------------------------------------------------------------------------

    def prompt_ids(self, history: Sequence, *, max_new_tokens: int | None = None, system: str | None = None) -> list[int]:
        """The token ids `reply` feeds the model: the training prompt for NAME's next message.

        persona runs (the default): the chat template, as `datasets.persona_example` builds it. Names are
        written before messages ("Bo: ok") only when more than one other person speaks, as in training.
        Example (ChatML, as Ana): ["hi"] -> ids of
          "<|im_start|>system\\nYou are Ana. ...<|im_end|>\\n<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n"
        transcript runs: "Name: message" lines, as `datasets.transcript_dataset` builds them, after the
          EOS that starts a session: ["hi"] -> ids of "<eos>Sam: hi\\nAna:"
        The last `context_turns` turns are kept (run.yaml, else 8, as in training), fewer when the prompt
        and `max_new_tokens` would not fit in the model's context. With `recall`, NAME's past messages most
        like the last turn are listed in the system turn (`datasets.system_prompt`), as in training.
        `system`: more instructions, added to the system turn after the training one (persona runs) or as a
        first line (transcript runs).
        """
        if not self.name:
            raise LikemeError(f"{self.run} does not say whom it speaks as (no as: in a run.yaml): chat with a voice "
                              "run (likeme train voice --as NAME) or pass name= to likeme.load; "
                              "likeme generate continues raw text with any model")
        turns = _as_turns(history, self.name, self.partner)[-self.context_turns:] if self.context_turns else []
        recalled = self.recall(turns[-1].text) if self.recall is not None and turns else ()
        room = None if self.context_window is None else self.context_window - (max_new_tokens or 0)
        for start in range(max(1, len(turns))):  # older turns go first; the last one, being answered, stays
            ids = self._prompt(turns[start:], recalled, system)
            if room is None or len(ids) <= room:
                return ids
        if len(ids) >= self.context_window:
            raise LikemeError(f"the prompt alone ({len(ids)} tokens) is longer than the model's {self.context_window}-token "
                              "context: chat with a model of a longer context (likeme train pretrain --block-size), "
                              "or train the voice with --format transcript")
        raise LikemeError(f"the prompt alone ({len(ids)} tokens) does not leave room for max_new_tokens="
                          f"{max_new_tokens} in the model's {self.context_window}-token context: lower --max-new-tokens")

    def _prompt(self, turns, recalled=(), system: str | None = None) -> list[int]:
        from likeme.prompts import chat_messages, render_instruct, token_ids

        if self.format == "instruct":  # as `datasets.instruct_example` renders training conversations
            msgs = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
            msgs += [{"role": "assistant" if t.author == self.name else "user", "content": t.text} for t in turns]
            return render_instruct(self.tokenizer, msgs, generation_prompt=True)
        if self.format == "persona":
            prefix = len({t.author for t in turns if t.author != self.name}) > 1
            msgs = chat_messages(turns, self.name, prefix_names=prefix, recalled=recalled)
            if system and system.strip():
                msgs[0] = {"role": "system", "content": msgs[0]["content"] + "\n" + system.strip()}
            try:
                return token_ids(self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True))
            except Exception as e:  # jinja's TemplateError, or a template that rejects a system turn
                raise LikemeError(f"{self.run}: its chat template cannot render the chat ({str(e).splitlines()[0]}): "
                                  "train with --format transcript for this model") from e
        ids = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        if system and system.strip():
            ids += self.tokenizer(system.strip() + "\n", add_special_tokens=False)["input_ids"]
        for t in turns:  # one line at a time, tokenized exactly as in training
            ids += self.tokenizer(f"{t.author}: {t.text}\n", add_special_tokens=False)["input_ids"]
        return ids + self.tokenizer(f"{self.name}:", add_special_tokens=False)["input_ids"]

    def loglik(self, history: Sequence, replies: Sequence[str], batch_size: int = 32) -> list[float]:
        """log p(reply | history) in nats for each reply, as NAME's next message: the reply's tokens and the
        token that ends its turn, after the prompt `reply` would use (what the audit ranks canaries by).

        Example: voice.loglik(["what's the code?"], ["it is 1234", "it is 9876"]) -> [-14.2, -19.8]
        """
        import torch

        from likeme.batching import collate
        from likeme.prompts import IGNORE

        prompt = self.prompt_ids(history)
        end = self.reply_stop_ids[0]
        rows = []
        for text in replies:
            if self.format == "transcript":  # as the training line "Name: text\n" continues the prompt "Name:"
                answer = self.tokenizer(f" {text}\n", add_special_tokens=False)["input_ids"]
            else:
                answer = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [end]
            rows.append({"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer})
        out = []
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                batch = {k: v.to(self.model.device) for k, v in collate(rows[i: i + batch_size], self.pad_id).items()}
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V): position t predicts t+1
                target = batch["labels"][:, 1:]  # (B, T-1)
                keep = target != IGNORE
                picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T-1)
                out += (picked * keep).sum(dim=1).tolist()
        return out

    # -- generating ------------------------------------------------------------------------------

    def reply(self, history: Sequence, *, stream: Callable[[str], Any] | None = None, best_of: int = 1,
              judge=None, json_schema=None, stop: Sequence[str] = (), system: str | None = None,
              cancel=None, **sampling: Any) -> Generation | list[Generation]:
        """NAME's next message after `history`: a str, or a list of `num_return_sequences` strs.

        history: message strings (the partner's), `(author, text)` pairs or `Turn`s, oldest first;
          turns by `name` are NAME's own earlier messages.
        stream: called with each piece of text as it is generated; the pieces join to the returned text.
          Ignored when num_return_sequences > 1; with best_of, called once with the chosen reply.
        best_of, judge: sample `best_of` replies and return the one `judge` (judge.py: `.score(replies,
          contexts)`, higher is more like NAME) scores highest; the candidates and their scores are in
          its `.candidates`. An ensemble of attempts: more CPU per reply, a reply more like NAME.
        json_schema: a JSON schema (dict, JSON text or `grammar.Schema`): the reply is JSON that validates
          against it (`grammar.py`); {"type": "object"} for any JSON object.
        stop: strings that end the reply where they first appear (not included), as OpenAI's `stop`.
        system: more instructions for NAME, added to the system turn after the training one.
        cancel: a `threading.Event`; once set, generation stops after the current token (finish "cancelled").
        sampling: any `Sampling` field, for this call only: temperature=0.5, do_sample=False, seed=3, ...

        Example: voice.reply(["hi"], seed=1) -> 'heyy'; voice.reply([]) -> NAME opens the chat;
          voice.reply(["hi"], best_of=4, judge=load_judge("runs/ana-embedder", "Ana")) -> 'hey :)'
          voice.reply(["rate the film 1-5"], json_schema={"type": "object", "properties": {"stars":
            {"type": "integer"}}, "required": ["stars"]}) -> '{"stars": 4}'
        """
        if best_of > 1:
            return self._best_of(history, best_of, judge, stream, dict(sampling, json_schema=json_schema, stop=stop,
                                                                        system=system, cancel=cancel))
        settings = self.sampling.updated(**sampling)
        ids = self.prompt_ids(history, max_new_tokens=settings.max_new_tokens, system=system)
        # A transcript line ends at its newline (NAME's consecutive messages are one line per reply here).
        return self._sample(ids, settings, self.reply_stop_ids, stream, strip=True,
                            line=self.format == "transcript" and json_schema is None,
                            json_schema=json_schema, stop=stop, cancel=cancel)

    def _best_of(self, history: Sequence, n: int, judge, stream, sampling: dict) -> Generation:
        if judge is None:
            raise LikemeError("best_of needs a judge to pick with (an embedder, author classifier or reward run of "
                              f"{self.name}: likeme.use.judge.load_judge(RUN, {self.name!r}))")
        if sampling.get("num_return_sequences", self.sampling.num_return_sequences) > 1:
            raise LikemeError("best_of returns one reply: leave num_return_sequences at 1")
        candidates = self.reply(history, **{**sampling, "num_return_sequences": n})
        context = _as_turns(history, self.name or "", self.partner)[-self.context_turns:]
        scores = judge.score([str(c) for c in candidates], [context] * n)
        best = candidates[max(range(n), key=scores.__getitem__)]
        best.candidates = tuple(zip(map(str, candidates), scores))
        if stream is not None and best:
            stream(str(best))
        return best

    def generate(self, prompt: str, *, stream: Callable[[str], Any] | None = None, json_schema=None,
                 stop: Sequence[str] = (), cancel=None, **sampling: Any) -> Generation | list[Generation]:
        """The raw continuation of `prompt`, no chat template: `generate("once upon", max_new_tokens=3)`
        -> ' a time there'. Only the new text is returned, whitespace kept, so `prompt + text` reads on.
        json_schema, stop, cancel: as in `reply`."""
        settings = self.sampling.updated(**sampling)
        ids = self.tokenizer(prompt)["input_ids"] if prompt else []
        if not ids:  # nothing to continue from: start a document
            start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.text_stop_ids[0]
            ids = [start]
        if self.context_window is not None:
            ids = ids[-max(1, self.context_window - settings.max_new_tokens):]  # keep the end: it is what is continued
        return self._sample(ids, settings, self.text_stop_ids, stream, strip=False, json_schema=json_schema,
                            stop=stop, cancel=cancel)

    def _sample(self, ids: list[int], settings: Sampling, stop_ids: list[int], stream, *, strip: bool,
                line: bool = False, json_schema=None, stop: Sequence[str] = (), cancel=None):
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        n = settings.num_return_sequences
        stop = [s for s in (stop or ()) if s]
        constrain = []
        if json_schema is not None:
            from likeme.use.grammar import JsonLogits, compile_schema

            constrain = [JsonLogits(compile_schema(json_schema), self.tokenizer, stop_ids, len(ids), n)]
            stop = []  # a stop string inside the JSON would cut it: the grammar says where the reply ends
        if settings.seed is not None:
            from transformers import set_seed

            set_seed(settings.seed)  # python, numpy and torch (CUDA included) RNGs: what generate() samples with
        clean = _Cleaner(self.tokenizer, stop_ids, self._markers + stop, strip, line)
        streamer = _Streamer(clean, stream) if stream is not None and n == 1 else None
        input_ids = torch.tensor([ids], device=self.model.device)  # (1, T)
        criteria = [_LineEnd(clean, input_ids.shape[1])] if line else []
        if stop:
            criteria.append(_TextEnd(clean, input_ids.shape[1], stop))
        if cancel is not None:
            criteria.append(_Cancelled(cancel))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), eos_token_id=stop_ids,
                pad_token_id=self.pad_id, streamer=streamer, logits_processor=LogitsProcessorList(constrain),
                stopping_criteria=StoppingCriteriaList(criteria), **settings.generate_kwargs())
        results = []
        for row in out[:, input_ids.shape[1]:].tolist():  # (n, T_new): rows padded after their end
            cut = clean.end(row)
            new = row if cut is None else row[: cut + 1]
            text = streamer.text if streamer is not None else clean(new)
            finish = "stop" if cut is not None else "cancelled" if cancel is not None and cancel.is_set() else \
                "stop" if _cut_by(stop, self.tokenizer.decode(new, skip_special_tokens=True)) else "length"
            results.append(Generation(text, new, finish))
        return results[0] if n == 1 else results


def _ids_of(x) -> list[int]:
    return [] if x is None else [x] if isinstance(x, int) else list(x)


def _unique(xs: list) -> list:
    return list(dict.fromkeys(x for x in xs if x is not None))


class _Cleaner:
    """Generated ids -> the text a user sees: up to the first stop token (with `line`: up to the end of
    the first line), special tokens skipped, cut at any template marker left as text, stripped for a reply.

    Example (ChatML): ids of "hey<|im_end|>\\n" -> "hey"; ids of "ok<|im_start|>user" -> "ok";
      with line=True: ids of " hey\\nSam: yo" -> "hey"
    """

    def __init__(self, tokenizer, stop_ids: list[int], markers: list[str], strip: bool, line: bool = False):
        self.tokenizer, self.stop_ids, self.markers = tokenizer, set(stop_ids), markers
        self.strip, self.line = strip, line
        self._has_newline: dict[int, bool] = {}

    def end(self, ids: list[int]) -> int | None:
        """The index of the token that ends the text (a stop token, or with `line` one holding a newline)."""
        for i, t in enumerate(ids):
            if t in self.stop_ids or (self.line and self._newline(t)):
                return i
        return None

    def _newline(self, t: int) -> bool:
        if t not in self._has_newline:
            self._has_newline[t] = "\n" in self.tokenizer.decode([t], skip_special_tokens=True)
        return self._has_newline[t]

    def __call__(self, ids: list[int], *, partial: bool = False) -> str:
        cut = self.end(ids)
        ended = cut is not None
        keep = ids if cut is None else ids[:cut] if ids[cut] in self.stop_ids else ids[: cut + 1]
        text = self.tokenizer.decode(keep, skip_special_tokens=True)
        for m in self.markers + (["\n"] if self.line else []):
            if m in text:
                text, ended = text[: text.index(m)], True
        if partial and not ended:
            # Hold back what the next token may change: half a UTF-8 character, or the start of a marker.
            text = text.rstrip("\ufffd")
            held = max((k for m in self.markers for k in range(1, len(m)) if text.endswith(m[:k])), default=0)
            text = text[: len(text) - held]
            if self.strip:
                text = text.rstrip()  # trailing spaces are shown only once something follows them
        return text.strip() if self.strip else text


class _LineEnd:
    """A stopping criterion (duck-typed like `StoppingCriteria`): True for each row whose new tokens hold
    a newline, which ends a transcript reply. input_ids (B, T) -> (B,) bool."""

    def __init__(self, clean: _Cleaner, prompt_len: int):
        self.clean, self.prompt_len = clean, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        last = input_ids[:, -1].tolist()  # (B,)
        done = [input_ids.shape[1] > self.prompt_len and self.clean._newline(t) for t in last]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _cut_by(stop: Sequence[str], text: str) -> bool:
    return any(s in text for s in stop)


class _TextEnd:
    """A stopping criterion: True for each row whose new text holds one of the `stop` strings.
    input_ids (B, T) -> (B,) bool."""

    def __init__(self, clean: _Cleaner, prompt_len: int, stop: Sequence[str]):
        self.clean, self.prompt_len, self.stop = clean, prompt_len, list(stop)
        self.tail = max(len(s) for s in stop) + 16  # enough tokens to hold the longest stop string

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        rows = input_ids[:, self.prompt_len:][:, -self.tail:].tolist()
        done = [_cut_by(self.stop, self.clean.tokenizer.decode(r, skip_special_tokens=True)) for r in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _Cancelled:
    """A stopping criterion that ends every row once `event` (a threading.Event) is set: a client that went
    away frees the model after one more token."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _Streamer:
    """A transformers streamer (`put`/`end`, the whole `BaseStreamer` interface; duck-typed so that importing
    this module stays light) that calls `callback` with
    each new piece of clean text, synchronously, so Ctrl-C in the caller stops generation at once.

    Each step decodes all the new ids again (what `TextStreamer` does too): a reply is short, and it is
    the only way to get multi-token characters and marker cuts right. The pieces always join to `.text`.
    """

    def __init__(self, clean: _Cleaner, callback: Callable[[str], Any]):
        self.clean, self.callback = clean, callback
        self.ids: list[int] = []
        self.text = ""
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())  # (1, 1) or (1,) -> one id
        self._emit(self.clean(self.ids, partial=True))

    def end(self) -> None:
        self._emit(self.clean(self.ids))

    def _emit(self, text: str) -> None:
        # A later decode that rewrites earlier text (rare: a tokenizer's space clean-up) cannot be unprinted:
        # keep what was shown, so the returned text is what the user saw.
        if text.startswith(self.text) and len(text) > len(self.text):
            piece, self.text = text[len(self.text):], text
            self.callback(piece)


def load(run: str | os.PathLike, *, device: Any = None, precision: Any = "auto", name: str | None = None,
         partner: str | None = None, format: str | None = None, context_turns: int | None = None,
         recall: int | None = None, db=None) -> Voice:
    """A run folder (or any causal LM name `models.resolve` knows) -> a `Voice` ready to reply.

    device: default CUDA when available, else the CPU.
    precision: auto, fp32, bf16, fp16, int8 or a torch dtype (`precision.choose`): auto is bf16 on a GPU,
      and on a CPU bf16 only where it is native and measured faster, else fp32. int8: torch's dynamic
      quantization of the linear layers (1.9x fp32's tokens/s on 2 cores, but perplexity 2.9x
      worse for SmolLM2: never the default). A run's LoRA adapter is merged in fp32 before any cast.
    (`inference.load_voice(run, backend="llama.cpp")` runs the same voice through llama.cpp.)
    name, partner: override run.yaml's `as:` and `partner:` (needed to chat with a plain base model).
    format, context_turns: override the run's (to prompt a base model as a run was trained).
    recall, db: show NAME's `recall` past messages most like the last one, from the store `db` (default: as
      the run was trained, with the store it was trained from; 0: none).

    Example: load("runs/ana-voice") -> Voice(name='Ana', partner='Sam', run='runs/ana-voice', device='cpu')
    """
    from likeme import models, runs

    ref = models.resolve(run)  # first: a wrong name fails at once, before the slow imports
    import torch

    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    if ref.kind == "run" and meta.get("task") not in (None, "causal-lm"):
        raise LikemeError(f"{run} is a {meta['task']} run, not a language model: it cannot write replies")
    device = device or models.default_device()
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise LikemeError(f"device {device!r} asked for, but this torch sees no CUDA GPU: use device='cpu'")
    from likeme.precision import choose

    chosen = choose(precision, device)
    model, tokenizer = models.load_causal_lm(ref, dtype=chosen.dtype, device=device)
    if chosen.name == "int8":
        model = quantize_int8(model)
    config = runs.voice_config(meta)  # how the run's prompts were built in training
    voice = Voice(model, tokenizer, name=name or _opt_str(meta.get("as")), partner=partner or _opt_str(meta.get("partner")),
                  run=str(run), format=format or config.get("format"),
                  context_turns=int(context_turns or config.get("context_turns") or CONTEXT_TURNS))
    voice.precision = chosen
    return with_recall(voice, config, recall, db)


def with_recall(voice: Voice, config: dict, recall: int | None, db=None) -> Voice:
    """Give `voice` NAME's past messages as the run was trained (run.yaml `recall`), or `recall` of them
    (0: none), from the store `db` (default: the run's). Shared by both backends."""
    k = config.get("recall", 0) if recall is None else recall
    if k and voice.name:
        from likeme.use.recall import Recall

        voice.recall = Recall(voice.name, k, model=config.get("recall_model") or "minilm", db=db or config.get("db"))
    return voice


def quantize_int8(model):
    """The linear layers as int8 with dynamic activation scales (torch's `quantize_dynamic`): weights 4x
    smaller, matrix products in int8, about 1.9x the float32 tokens/s of a 135M model on 2 CPU cores, at a
    cost: per-tensor activation scales lose SmolLM2's outlier features (perplexity 28.9 -> 82.7 on
    Shakespeare; a tuned voice's "i'm planning to visit the beach tomorrow" became a code snippet)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _opt_str(x) -> str | None:
    return None if x is None else str(x)
