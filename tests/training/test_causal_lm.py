"""The causal-LM steps the recipes share: the LM head on labelled positions only gives the full loss."""
import pytest
import torch
from tiny import tiny_causal_lm

from likeme import batching
from likeme.prompts import IGNORE
from likeme.training import causal_lm

# Replies after a context, as a voice's examples are: most positions are context, without a label.
EXAMPLES = [{"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [IGNORE] * 4 + [9, 10, 11]},
            {"input_ids": [12, 13, 14, 15], "labels": [IGNORE, IGNORE, 14, 15]},
            {"input_ids": [16, 17, 18, 19, 20, 21], "labels": [IGNORE] * 5 + [21]}]


def test_head_on_labels_worked_example():
    batch = batching.head_on_labels({"labels": torch.tensor([[IGNORE, IGNORE, 6, 7]])})
    assert batch["logits_to_keep"].tolist() == [1, 2]
    assert batch["shift_labels"].tolist() == [[6, 7]]


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_head_on_labels_gives_the_full_loss_and_gradients(packed):
    model = tiny_causal_lm()
    collate = batching.collate_packed if packed else (lambda b: batching.collate(b, 0))
    batch = collate(EXAMPLES)
    full = model(**batch).loss
    full.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    cheap_batch = causal_lm.head_on_labels(collate, model)(EXAMPLES)
    assert len(cheap_batch["logits_to_keep"]) < batch["input_ids"].shape[1] - 1  # fewer positions through the head
    out = model(**cheap_batch)
    assert out.logits.shape[1] == len(cheap_batch["logits_to_keep"])
    out.loss.backward()
    assert abs(out.loss.item() - full.item()) < 1e-5
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-6), n


def test_head_on_labels_counts_items_as_the_trainer_does():
    """With gradient accumulation the Trainer divides the summed loss by the labelled tokens of all micro-batches
    (num_items_in_batch): the same figure either way."""
    model = tiny_causal_lm()
    batch = batching.collate(EXAMPLES, 0)
    n = torch.tensor(40)
    full = model(**batch, num_items_in_batch=n).loss
    cheap = model(**batching.head_on_labels(batch), num_items_in_batch=n).loss
    assert abs(full.item() - cheap.item()) < 1e-6


def test_the_distilled_student_runs_its_head_on_labels_only():
    """DistillObjective (tokens=True) gathers the student's logits at the labelled positions through
    `logits_to_keep`: the same loss and gradients as from the full (B, T, V) logits."""
    from likeme.batching import collate
    from likeme.training.losses import DistillationLoss, DistillObjective

    torch.manual_seed(0)
    batch = collate(EXAMPLES, 0)
    n = int((batch["labels"][:, 1:] != IGNORE).sum())
    teacher, indices = torch.randn(n, 4), torch.randint(0, 64, (n, 4), dtype=torch.int32)
    figures = []
    for cheap in (False, True):
        objective = DistillObjective(tiny_causal_lm(), DistillationLoss(2.0, 0.5), tokens=True)
        assert objective.head_on_labels  # the tiny Llama takes logits_to_keep
        objective.head_on_labels = cheap
        loss = objective(batch["input_ids"], batch["attention_mask"], teacher, batch["labels"], indices)["loss"]
        loss.backward()
        figures.append((loss.item(), {k: p.grad.clone() for k, p in objective.named_parameters() if p.grad is not None}))
    (full, g_full), (cheap, g_cheap) = figures
    assert abs(full - cheap) < 1e-5
    assert g_full.keys() == g_cheap.keys() and all(torch.allclose(g_full[k], g_cheap[k], atol=1e-6) for k in g_full)


def test_collate_groups_worked_example():
    batch = [{"input_ids": [5, 6], "labels": [IGNORE, 6], "rivals": [{"input_ids": [7, 6], "labels": [IGNORE, 6]}]}]
    out = batching.collate_groups(batch, batching.collate_packed)
    assert out["input_ids"].tolist() == [[5, 6, 7, 6]] and out["labels"].tolist() == [[IGNORE, 6, IGNORE, 6]]
    assert out["example"].tolist() == [[-1, 0, -1, 1]] and out["group_size"] == 2
    padded = batching.collate_groups(batch, lambda b: batching.collate(b, 0))
    assert padded["example"].tolist() == [[-1, 0], [-1, 1]]
    assert "example" not in batching.collate_groups([{k: v for k, v in batch[0].items() if k != "rivals"}],
                                                    batching.collate_packed)  # held-out examples: as they are


def _sum_logp(model, e):
    ids, labels = torch.tensor([e["input_ids"]]), torch.tensor(e["labels"][1:])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    keep = labels != IGNORE
    return logp[keep].gather(1, labels[keep][:, None]).sum(), int(keep.sum())


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_slot_contrast_loss_against_hand_computed_values(packed):
    from likeme.training.losses import SlotContrastLoss

    model = tiny_causal_lm()
    # two turns, each in its own slot and one rival: the same reply tokens after another prompt
    groups = [{**EXAMPLES[0], "rivals": [{"input_ids": [30, 6, 7, 8, 9, 10, 11], "labels": EXAMPLES[0]["labels"]}]},
              {**EXAMPLES[1], "rivals": [{"input_ids": [31, 32, 14, 15], "labels": EXAMPLES[1]["labels"]}]}]
    collate = batching.collate_packed if packed else (lambda b: batching.collate(b, 0))
    batch = causal_lm.head_on_labels(lambda b: batching.collate_groups(b, collate), model)(groups)
    loss, parts = SlotContrastLoss(weight=0.5)(model, batch)
    with torch.no_grad():
        scored = [[_sum_logp(model, x) for x in (g, *g["rivals"])] for g in groups]
    lm = -sum(s[0][0] for s in scored) / sum(s[0][1] for s in scored)
    contrast = sum(-torch.log_softmax(torch.stack([x[0] / x[1] for x in s]), 0)[0] for s in scored) / len(scored)
    assert parts["lm"].item() == pytest.approx(lm.item(), abs=1e-5)
    assert parts["contrast"].item() == pytest.approx(contrast.item(), abs=1e-5)
    assert loss.item() == pytest.approx(lm.item() + 0.5 * contrast.item(), abs=1e-5)
    loss.backward()  # it trains the model
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # the hinge: max(0, margin - (own - rival)) per turn, in nats per token, averaged over the turns
    leads = [s[0][0] / s[0][1] - max(x[0] / x[1] for x in s[1:]) for s in scored]
    margin = max(lead.item() for lead in leads) + 0.1  # both turns inside it, so both pull
    _, parts = SlotContrastLoss(weight=0.5, margin=margin)(model, batch)
    assert parts["contrast"].item() == pytest.approx(sum(margin - lead.item() for lead in leads) / 2, abs=1e-5)
    margin = (leads[0].item() + leads[1].item()) / 2  # only the turn with the smaller lead pulls
    _, parts = SlotContrastLoss(weight=0.5, margin=margin)(model, batch)
    assert parts["contrast"].item() == pytest.approx(abs(leads[0].item() - leads[1].item()) / 4, abs=1e-5)
