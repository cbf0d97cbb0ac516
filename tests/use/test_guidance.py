"""Person guidance: NAME's slot sharpened against the others' slots, the same distribution scored and written."""
import math

import pytest
import torch
from tiny import three_person_store

from likeme import models
from likeme.check.likeness import specificity
from likeme.data.examples import persona_example, reply_sessions
from likeme.data.slots import by_person
from likeme.prompts import IGNORE, Turn
from likeme.use.guidance import combine, guide_people, guided_losses
from likeme.use.likelihood import RunAndBase, example_losses


def test_guidance_by_hand():
    # own slot p = (1/3, 2/3), the rival's (2/3, 1/3); a = 1: p~ ∝ p_own^2 / p_rival = (1/6, 4/3) -> (1/9, 8/9)
    own, rival = torch.tensor([0.0, math.log(2)]), torch.tensor([math.log(2), 0.0])
    assert combine(own, [rival], 1.0).exp().tolist() == pytest.approx([1 / 9, 8 / 9], abs=1e-6)
    assert combine(own, [rival], 0.0).exp().tolist() == pytest.approx([1 / 3, 2 / 3], abs=1e-6)  # a = 0: as trained
    # two rivals: their log-probabilities averaged (a geometric mean of the rival distributions)
    assert combine(own, [rival, own], 1.0).exp().tolist() == pytest.approx(combine(own, [rival], 0.5).exp().tolist(), abs=1e-6)


def test_guide_people_are_the_others_the_voice_knows():
    assert guide_people({"speakers": {"Ana": 9, "Sam": 5, "Bo": 3, "Cy": 1}}, "Ana") == ["Sam", "Bo"]
    assert guide_people({"speakers": {"Ana": 9, "Sam": 5, "Bo": 3}}, "Sam") == ["Ana", "Bo"]
    assert guide_people({"data": {"messages": {"Bo": 2, "Ana": 9, "Sam": 5}}}, "Ana") == ["Sam", "Bo"]  # a voice of one


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    store = three_person_store(tmp_path_factory.mktemp("guidance") / "s.db")
    sessions, _, _ = reply_sessions(store, "Ana", heldout=0.0)
    store.close()
    return by_person(sessions)


def _logits(model, e):
    ids, labels = torch.tensor([e["input_ids"]]), torch.tensor(e["labels"][1:])
    keep = labels != IGNORE
    with torch.no_grad():
        return model(input_ids=ids).logits[0, :-1][keep].float(), labels[keep]


def _slot(tok, r, slot):
    return persona_example(tok, r.context, Turn(slot, r.reply.text), slot, prefix_names=r.prefix_names)


def test_guided_specificity_against_hand_computed_values(tiny_voice_run, held):
    scorer = RunAndBase(tiny_voice_run)
    merged = models.load_causal_lm(tiny_voice_run)[0]
    tok = scorer.tokenizer
    against = ["Sam", "Bo"]
    got = specificity(scorer, held, "Ana", guidance=1.5, against=against)
    plain = specificity(scorer, held, "Ana")
    ppl = {}
    for person, found in held.items():
        nll = n = 0
        for r in found:
            own, target = _logits(merged, _slot(tok, r, "Ana"))
            logp = torch.log_softmax((2.5 * torch.log_softmax(own, -1) - 1.5 * torch.stack(
                [torch.log_softmax(_logits(merged, _slot(tok, r, p))[0], -1) for p in against]).mean(0)), -1)
            nll -= logp.gather(1, target[:, None]).sum().item()
            n += len(target)
        ppl[person] = math.exp(nll / n)
    for person in held:
        assert got["by_person"][person]["ppl"] == pytest.approx(ppl[person], rel=1e-4)
        assert got["by_person"][person]["base_ppl"] == plain["by_person"][person]["base_ppl"]  # the base as it is
    assert got["guidance"] == 1.5 and got["against"] == against
    assert got["by_person"]["Ana"]["ppl"] != pytest.approx(plain["by_person"]["Ana"]["ppl"], rel=1e-6)


def test_guided_losses_at_zero_are_the_plain_losses(tiny_voice_run, held):
    model, tok = models.load_causal_lm(tiny_voice_run)
    found = held["Ana"][:3]
    made = [_slot(tok, r, "Ana") for r in found]
    rivals = [[_slot(tok, r, "Sam")] for r in found]
    assert [s for s, _ in guided_losses(model, made, rivals, 0.0, tok.pad_token_id)] == pytest.approx(
        [s for s, _ in example_losses(model, made, tok.pad_token_id)], rel=1e-5)
    with pytest.raises(ValueError, match="other tokens"):
        guided_losses(model, made[:1], [[made[1]]], 1.0, tok.pad_token_id)  # a rival of another turn


def test_a_guided_reply_is_the_guided_distribution_step_by_step(tiny_voice_run):
    from likeme.use.generate import load

    voice = load(tiny_voice_run, precision="fp32", guidance=2.0)
    assert voice.against == ["Sam", "Bo"]
    history = [("Sam", "hi 3"), ("Ana", "hey"), ("Bo", "yo")]
    ids = voice.prompt_ids(history)
    rivals = [voice.prompt_ids(history, slot=p) for p in voice.against]
    assert ids != rivals[0] and "You are Sam." in voice.tokenizer.decode(rivals[0])
    out = []
    with torch.no_grad():
        for _ in range(6):  # greedy, the whole prefix each step (no cache): what the processor must match
            step = [voice.model(input_ids=torch.tensor([x + out])).logits[0, -1] for x in [ids, *rivals]]
            t = int(combine(step[0], step[1:], 2.0).argmax())
            out.append(t)
            if t in voice.reply_stop_ids:
                break
    got = voice.reply(history, do_sample=False, repetition_penalty=1.0, max_new_tokens=6)
    assert list(got.token_ids) == out


def test_labelled_logits_keeps_the_labelled_positions_only():
    """Position t predicts token t+1: a context of 3 tokens then 3 labelled ones -> 3 rows, the full
    forward's rows 2..4, and the labels themselves."""
    from tiny import tiny_causal_lm

    from likeme.use.guidance import labelled_logits

    model = tiny_causal_lm()
    example = {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [IGNORE, IGNORE, IGNORE, 8, 9, 10]}
    with torch.no_grad():
        logits, target = labelled_logits(model, example)
        full = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
    assert target.tolist() == [8, 9, 10]
    assert torch.allclose(logits, full[2:5])
