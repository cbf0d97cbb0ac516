"""Voice datasets: who is speaking decides the loss mask; the split is by time."""

import pytest
from tiny import three_person_store, tiny_tokenizer

from likeme.batching import collate
from likeme.data.examples import (
    persona_dataset,
    persona_example,
    session_turns,
    split_by_time,
    transcript_dataset,
)
from likeme.errors import LikemeError
from likeme.prompts import IGNORE, Turn, system_prompt


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_session_turns_merge_and_drop_media():
    class M:
        def __init__(self, author, text, kind="text"):
            self.author, self.text, self.kind = author, text, kind
    turns = session_turns([M("Ana", "hi"), M("Ana", "", "media"), M("Ana", "look"), M("Sam", "wow"),
                           M("", "Sam left", "system")])
    assert turns == [Turn("Ana", "hi\nlook"), Turn("Sam", "wow")]


def test_persona_label_mask_three_person_chat(tok):
    context = [Turn("Sam", "hi"), Turn("Ana", "hey"), Turn("Bo", "yo")]
    ex = persona_example(tok, context, Turn("Ana", "ok"), "Ana", prefix_names=True)
    prompt = (f"<|im_start|>system\n{system_prompt('Ana')}<|im_end|>\n"
              "<|im_start|>user\nSam: hi<|im_end|>\n"
              "<|im_start|>assistant\nhey<|im_end|>\n"
              "<|im_start|>user\nBo: yo<|im_end|>\n"
              "<|im_start|>assistant\n")
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tok("ok", add_special_tokens=False)["input_ids"]
    assert ex["input_ids"] == prompt_ids + reply_ids + [2]  # 2 = <|im_end|>: the model learns to stop
    assert ex["labels"] == [IGNORE] * len(prompt_ids) + reply_ids + [2]
    # NAME's earlier turn ("hey") is context only: no label on it, nor on anyone else's words.
    assert tok.decode([i for i, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE]) == "ok<|im_end|>"


def test_persona_two_people_are_not_prefixed(tok):
    ex = persona_example(tok, [Turn("Sam", "hi")], Turn("Ana", "hey"), "Ana", prefix_names=False)
    assert "<|im_start|>user\nhi<|im_end|>" in tok.decode(ex["input_ids"])


def test_persona_context_is_cut_from_the_oldest_turn(tok):
    context = [Turn("Sam", "a long opening message " * 5), Turn("Sam", "short")]
    full = persona_example(tok, context, Turn("Ana", "ok"), "Ana", prefix_names=False, max_length=1000)
    cut = persona_example(tok, context, Turn("Ana", "ok"), "Ana", prefix_names=False,
                          max_length=len(full["input_ids"]) - 1)
    text = tok.decode(cut["input_ids"])
    assert "opening" not in text and "short" in text and text.endswith("ok<|im_end|>")


def test_persona_dataset_split_by_time(tok, tmp_path):
    store = three_person_store(tmp_path / "s.db")
    data = persona_dataset(store, "Ana", tok, heldout=0.1)
    # 12 sessions -> 10% rounded up = 2 held out, the latest ones
    assert (data.train_sessions, data.heldout_sessions) == (10, 2)
    # Ana replies twice per session ("hey\nwhat's up" merged, then "ok"); her first turn has context
    assert (len(data.train), len(data.heldout)) == (20, 4)
    assert data.partner == "Sam"  # Sam's 2 turns per session to Bo's 1 (Bo's photos are no turns)
    train_text = {tok.decode(e["input_ids"]) for e in data.train}
    held_text = {tok.decode(e["input_ids"]) for e in data.heldout}
    assert all("hi 10" in t or "hi 11" in t for t in held_text)
    assert not any("hi 10" in t or "hi 11" in t for t in train_text)  # no session in both splits


def test_split_by_time():
    assert split_by_time(list(range(10)), 0.1) == (list(range(9)), [9])
    assert split_by_time(list(range(25)), 0.1) == (list(range(22)), [22, 23, 24])


def test_transcript_dataset_loss_on_me(tok, tmp_path):
    store = three_person_store(tmp_path / "s.db")
    data = transcript_dataset(store, "Ana", tok, block_size=64, loss_on="me")
    labelled = "".join(tok.decode([l for l in b["labels"] if l != IGNORE]) for b in data.train)
    assert "Ana: hey" in labelled and "Sam:" not in labelled and "Bo:" not in labelled
    assert all(len(b["input_ids"]) <= 64 for b in data.train)
    everyone = transcript_dataset(store, "Ana", tok, block_size=64, loss_on="all")
    labelled = "".join(tok.decode([l for l in b["labels"] if l != IGNORE]) for b in everyone.train)
    assert "Sam: hi 0" in labelled


def test_too_small_is_refused_with_counts(tok, tmp_path):
    store = three_person_store(tmp_path / "s.db", sessions=3)
    with pytest.raises(LikemeError, match=r"6 replies by Ana found, at least 20 needed"):
        persona_dataset(store, "Ana", tok)


def test_unknown_person(tok, tmp_path):
    store = three_person_store(tmp_path / "s.db")
    with pytest.raises(LikemeError, match="no messages by 'ana' in the store; people there include: Ana"):
        persona_dataset(store, "ana", tok)


def test_collate_literal():
    batch = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_collate_packed_literal_and_equal_to_the_padded_batch():
    import torch
    from tiny import tiny_causal_lm

    from likeme.batching import collate_packed

    packed = collate_packed([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}])
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 9]] and packed["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1]] and "attention_mask" not in packed
    # the same loss as the padded batch: each example attends only to itself
    model = tiny_causal_lm().eval()
    batch = [{"input_ids": [5, 6, 7, 9, 10], "labels": [-100, -100, 7, 9, 10]},
             {"input_ids": [8, 9, 11], "labels": [-100, 9, 11]}, {"input_ids": [12, 13], "labels": [-100, 13]}]
    with torch.no_grad():
        padded = model(**collate(batch, pad_id=0)).loss
        flat = model(**collate_packed(batch)).loss
        leaky = model(input_ids=collate_packed(batch)["input_ids"], labels=collate_packed(batch)["labels"]).loss
    torch.testing.assert_close(flat, padded)
    assert abs(leaky.item() - padded.item()) > 1e-3  # without the positions, one long sequence: not the same
