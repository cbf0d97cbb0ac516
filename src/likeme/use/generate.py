"""Talking to a trained voice: a run folder -> `Voice`, which replies as NAME or continues raw text.

The prompt is built exactly as at training time (`likeme.prompts`: the run's chat template and the
generation prompt), and a reply ends where NAME's turn ends: on the end-of-turn token, the eos,
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

With `guidance` (run.yaml's, or `reply(..., guidance=1.0)`), NAME's slot is sharpened against the same chat in
the slots of `against`, the other people the voice learned (`use.guidance`: classifier-free guidance with
the person as the condition); 0 writes as trained.

What comes back is a `Generation`: a str that also carries `.token_ids` (the generated ids, the stop
token included) and `.finish` ("stop": the turn ended; "length": cut at max_new_tokens).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from likeme.errors import LikemeError
from likeme.prompts import as_turns
from likeme.use.decoding import (
    TEMPLATE_MARKERS,
    Cancelled,
    Cleaner,
    Generation,
    LineEnd,
    Sampling,
    Streamer,
    TextEnd,
    cut_by,
    ids_of,
    unique,
)

CONTEXT_TURNS = 8  # turns of history in the prompt when run.yaml does not say: the persona dataset's default


class Voice:
    """A model that speaks as `name` to `partner`. Make one with `load(run)`.

    Attributes: `name` (who it speaks as, run.yaml `as:`), `partner` (who you play, run.yaml `partner:`),
    `run` (the folder or model name it was loaded from), `model`, `tokenizer`, `sampling` (the defaults
    every call starts from; keyword arguments of `reply`/`generate` override them for that call).
    """

    def __init__(self, model, tokenizer, *, name: str | None, partner: str | None, run: str,
                 format: str | None = None, context_turns: int = CONTEXT_TURNS, sampling: Sampling | None = None,
                 recall: Callable[[str], list[str]] | None = None, guidance: float = 0.0, against: Sequence[str] = ()):
        from likeme.prompts import end_of_turn_id
        from likeme.use.guidance import check_alpha

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
        self.guidance, self.against = check_alpha(guidance), [p for p in against if p != name]
        vocab = tokenizer.get_vocab()
        special = [vocab[t] for t in ("<|endoftext|>",) if t in vocab]  # a document ended: nothing more to say
        ends = [end_of_turn_id(tokenizer), tokenizer.eos_token_id, *special, *ids_of(model.generation_config.eos_token_id)]
        # Raw text stops where the text ends; a reply also where a new turn starts.
        self.text_stop_ids = unique(ends)
        self.reply_stop_ids = unique(ends + [vocab[t] for t in ("<|im_start|>",) if t in vocab])
        self.pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, self.text_stop_ids[0]) if i is not None)
        self._markers = unique([*TEMPLATE_MARKERS, *(tokenizer.convert_ids_to_tokens(self.reply_stop_ids))])
        config = getattr(model, "config", None)
        limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
        self.context_window = min((int(x) for x in limits if x and x < 1_000_000), default=None)

    def __repr__(self) -> str:
        return f"Voice(name={self.name!r}, partner={self.partner!r}, run={self.run!r}, device='{self.model.device}')"

    precision = None  # the precision.Choice it was loaded with (set by load)

    # -- prompts ---------------------------------------------------------------------------------

    def prompt_ids(self, history: Sequence, *, max_new_tokens: int | None = None, system: str | None = None,
                   slot: str | None = None) -> list[int]:
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
        first line (transcript runs). `slot`: the same chat as someone else's next message (their persona
        prompt, their turns the assistant's): person guidance's rival prompts.
        """
        if not self.name:
            raise LikemeError(f"{self.run} does not say whom it speaks as (no as: in a run.yaml): chat with a voice "
                              "run (likeme train voice --as NAME) or pass name= to likeme.load; "
                              "likeme generate continues raw text with any model")
        turns = as_turns(history, self.name, self.partner)[-self.context_turns:] if self.context_turns else []
        recalled = self.recall(turns[-1].text) if self.recall is not None and turns and not slot else ()
        room = None if self.context_window is None else self.context_window - (max_new_tokens or 0)
        for start in range(max(1, len(turns))):  # older turns go first; the last one, being answered, stays
            ids = self._prompt(turns[start:], recalled, system, slot)
            if room is None or len(ids) <= room:
                return ids
        if len(ids) >= self.context_window:
            raise LikemeError(f"the prompt alone ({len(ids)} tokens) is longer than the model's {self.context_window}-token "
                              "context: chat with a model of a longer context (likeme train pretrain --block-size), "
                              "or train the voice with --format transcript")
        raise LikemeError(f"the prompt alone ({len(ids)} tokens) does not leave room for max_new_tokens="
                          f"{max_new_tokens} in the model's {self.context_window}-token context: lower --max-new-tokens")

    def _prompt(self, turns, recalled=(), system: str | None = None, slot: str | None = None) -> list[int]:
        from likeme.prompts import render_prompt

        try:
            return render_prompt(self.tokenizer, turns, slot or self.name, format=self.format, recalled=recalled,
                                 system=system)
        except LikemeError as e:
            raise LikemeError(f"{self.run}: {e}") from e

    def loglik(self, history: Sequence, replies: Sequence[str], batch_size: int = 32) -> list[float]:
        """log p(reply | history) in nats for each reply, as NAME's next message: the reply's tokens and the
        token that ends its turn, after the prompt `reply` would use (what the audit ranks canaries by).

        Example: voice.loglik(["what's the code?"], ["it is 1234", "it is 9876"]) -> [-14.2, -19.8]
        """
        import torch

        from likeme.batching import collate
        from likeme.prompts import IGNORE, transcript_line

        prompt = self.prompt_ids(history)
        end = self.reply_stop_ids[0]
        rows = []
        for text in replies:
            if self.format == "transcript":  # as the training line "Name: text\n" continues the prompt "Name:"
                answer = self.tokenizer(transcript_line(self.name, text)[len(self.name) + 1:],
                                        add_special_tokens=False)["input_ids"]
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
              cancel=None, guidance: float | None = None, **sampling: Any) -> Generation | list[Generation]:
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
        guidance: person guidance for this call (default: the voice's `guidance`; 0: off), against the slots
          of `against` (`use.guidance`); persona voices only.
        sampling: any `Sampling` field, for this call only: temperature=0.5, do_sample=False, seed=3, ...

        Example: voice.reply(["hi"], seed=1) -> 'heyy'; voice.reply([]) -> NAME opens the chat;
          voice.reply(["hi"], best_of=4, judge=load_judge("runs/ana-embedder", "Ana")) -> 'hey :)'
          voice.reply(["rate the film 1-5"], json_schema={"type": "object", "properties": {"stars":
            {"type": "integer"}}, "required": ["stars"]}) -> '{"stars": 4}'
        """
        if best_of > 1:
            return self._best_of(history, best_of, judge, stream, dict(sampling, json_schema=json_schema, stop=stop,
                                                                        system=system, cancel=cancel, guidance=guidance))
        from likeme.use.guidance import check_alpha

        settings = self.sampling.updated(**sampling)
        ids = self.prompt_ids(history, max_new_tokens=settings.max_new_tokens, system=system)
        alpha = self.guidance if guidance is None else check_alpha(guidance)
        if alpha and self.format != "persona":
            raise LikemeError(f"{self.run}: person guidance needs a persona voice (its slots); this one is {self.format}")
        rivals = [self.prompt_ids(history, max_new_tokens=settings.max_new_tokens, system=system, slot=p)
                  for p in self.against] if alpha else []
        # A transcript line ends at its newline (NAME's consecutive messages are one line per reply here).
        return self._sample(ids, settings, self.reply_stop_ids, stream, strip=True,
                            line=self.format == "transcript" and json_schema is None,
                            json_schema=json_schema, stop=stop, cancel=cancel, guide=(alpha, rivals))

    def _best_of(self, history: Sequence, n: int, judge, stream, sampling: dict) -> Generation:
        if judge is None:
            raise LikemeError("best_of needs a judge to pick with (an embedder, author classifier or reward run of "
                              f"{self.name}: likeme.use.judge.load_judge(RUN, {self.name!r}))")
        if sampling.get("num_return_sequences", self.sampling.num_return_sequences) > 1:
            raise LikemeError("best_of returns one reply: leave num_return_sequences at 1")
        candidates = self.reply(history, **{**sampling, "num_return_sequences": n})
        context = as_turns(history, self.name or "", self.partner)[-self.context_turns:]
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
                line: bool = False, json_schema=None, stop: Sequence[str] = (), cancel=None, guide=(0.0, ())):
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from likeme.use.guidance import GuidanceLogits

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
        if guide[0] and guide[1]:  # first: the grammar then masks the guided scores
            constrain.insert(0, GuidanceLogits(self.model, list(guide[1]), guide[0]))
        clean = Cleaner(self.tokenizer, stop_ids, self._markers + stop, strip, line)
        streamer = Streamer(clean, stream) if stream is not None and n == 1 else None
        input_ids = torch.tensor([ids], device=self.model.device)  # (1, T)
        criteria = [LineEnd(clean, input_ids.shape[1])] if line else []
        if stop:
            criteria.append(TextEnd(clean, input_ids.shape[1], stop))
        if cancel is not None:
            criteria.append(Cancelled(cancel))
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
                "stop" if cut_by(stop, self.tokenizer.decode(new, skip_special_tokens=True)) else "length"
            results.append(Generation(text, new, finish))
        return results[0] if n == 1 else results


def load(run: str | os.PathLike, *, device: Any = None, precision: Any = "auto", name: str | None = None,
         partner: str | None = None, format: str | None = None, context_turns: int | None = None,
         recall: int | None = None, db=None, guidance: float | None = None) -> Voice:
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
    guidance: person guidance (`use.guidance`; default run.yaml's `guidance`, else 0: off), against the other
      people the run learned (`guidance.guide_people`).

    Example: load("runs/ana-voice") -> Voice(name='Ana', partner='Sam', run='runs/ana-voice', device='cpu')
    """
    from likeme import models, runs

    ref = models.resolve(run)  # first: a wrong name fails at once, before the slow imports
    import torch

    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    if ref.kind == "run" and meta.get("task") not in (None, "causal-lm"):
        raise LikemeError(f"{run} is a {meta['task']} run, not a language model: it cannot write replies")
    name, partner = runs.speaking_as(meta, name, partner)  # before the slow load: a name it never learnt fails now
    device = device or models.default_device()
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise LikemeError(f"device {device!r} asked for, but this torch sees no CUDA GPU: use device='cpu'")
    from likeme.precision import choose

    chosen = choose(precision, device)
    model, tokenizer = models.load_causal_lm(ref, dtype=chosen.dtype, device=device)
    if chosen.name == "int8":
        model = quantize_int8(model)
    config = runs.voice_config(meta)  # how the run's prompts were built in training
    from likeme.use.guidance import guide_people

    alpha = (config.get("guidance") or 0.0) if guidance is None else guidance
    voice = Voice(model, tokenizer, name=_opt_str(name), partner=_opt_str(partner),
                  run=str(run), format=format or config.get("format"),
                  context_turns=int(context_turns or config.get("context_turns") or CONTEXT_TURNS),
                  guidance=alpha, against=guide_people(meta, name) if name else ())
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
