"""Person guidance swept: a voice's specificity on test turns at several guidance strengths in one pass.

    python bench/guidance.py RUN --test "richard3 (last scenes).txt" --as Gloucester \
        --people Gloucester,"Queen Elizabeth",Buckingham --alphas 0,0.5,1,1.5,2,3

Each person's test turns (at most --max-turns, an even sample) are scored in NAME's slot by the run, in the
slots it is guided against (`guidance.guide_people`: the two most active others it learnt) and by its base
(the run with its adapter off: for a voice tuned from another run, that run); the guided distribution of
`use.guidance` is formed from the same logits for every strength, so one pass gives the whole sweep. Prints,
for each strength: NAME's own perplexity drop, the others' pooled drop, specificity (points), each person's
drop, and the likelihood-ratio judge's AUC (each turn's gain in nats per token over the base) at telling
NAME's turns from the others'. `likeme eval RUN --guidance A` gives the same figures for one strength.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    import torch

    from likeme import runs
    from likeme.check.evaluate import temporary_store
    from likeme.data.examples import even_sample, reply_sessions
    from likeme.data.slots import by_person, in_slot
    from likeme.use.embedder import auc
    from likeme.use.guidance import combine, guide_people, labelled_logits
    from likeme.use.likelihood import RunAndBase

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--test", required=True, help="an export the run never saw")
    ap.add_argument("--as", dest="name", required=True)
    ap.add_argument("--people", required=True, help="comma-separated, NAME first")
    ap.add_argument("--alphas", default="0,0.5,1,1.5,2,3")
    ap.add_argument("--max-turns", type=int, default=60)
    args = ap.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    people = args.people.split(",")
    scorer = RunAndBase(args.run)
    tok, model = scorer.tokenizer, scorer.model
    against = guide_people(runs.read_meta(args.run), args.name)
    cfg = runs.voice_config(scorer.meta)
    with temporary_store(args.test, None, None) as store:
        sessions, _, _ = reply_sessions(store, args.name, heldout=0.0)
    found = by_person(sessions, context_turns=cfg.get("context_turns", 8))

    def logits(m, e):  # (N, V) at the labelled positions, and the N targets
        with torch.no_grad():
            out, t = labelled_logits(m, e)
        return out.float(), t

    model.eval()
    rows = {}
    for person in people:
        turns = even_sample(found[person], args.max_turns)
        made = {s: in_slot(tok, turns, s, max_length=cfg.get("block_size", 512)) for s in [args.name, *against]}
        rows[person] = []
        for i in range(len(turns)):
            if any(made[s][i] is None for s in made):
                continue
            own, target = logits(model, made[args.name][i])
            rival = [logits(model, made[s][i]) for s in against]
            if any(not torch.equal(t, target) for _, t in rival):
                continue  # cut differently in some slot
            if scorer.base is not None:
                base, _ = logits(scorer.base, made[args.name][i])
            else:
                with model.disable_adapter():
                    base, _ = logits(model, made[args.name][i])
            row = {"n": len(target), "after_name": turns[i].context[-1].author == args.name, "base": -torch.log_softmax(base, -1).gather(1, target[:, None]).sum().item()}
            for a in alphas:
                row[a] = -combine(own, [r for r, _ in rival], a).gather(1, target[:, None]).sum().item()
            rows[person].append(row)

    def ppl(rs, k):
        return math.exp(sum(r[k] for r in rs) / sum(r["n"] for r in rs))

    name = args.name
    print(f"{args.run}: {name}'s slot guided against {', '.join(against)}")
    for which, keep in (("all turns", lambda r: True), (f"turns that follow someone other than {name}",
                                                        lambda r: not r["after_name"])):
        part = {p: [r for r in rows[p] if keep(r)] for p in people}
        print(f"\n{which}: " + ", ".join(f"{p} {len(part[p])}" for p in people))
        print("| guidance | own drop | others' drop | specificity | " + " | ".join(f"{p}'s drop" for p in people)
              + " | judge AUC |\n|" + " --- |" * (5 + len(people)))
        others = [r for p in people if p != name for r in part[p]]
        labels = [int(p == name) for p in people for _ in part[p]]
        for a in alphas:
            drop = {p: 1 - ppl(part[p], a) / ppl(part[p], "base") for p in people}
            od = 1 - ppl(others, a) / ppl(others, "base")
            gains = [(r["base"] - r[a]) / r["n"] for p in people for r in part[p]]
            print(f"| {a:g} | {100 * drop[name]:.1f}% | {100 * od:.1f}% | {100 * (drop[name] - od):+.1f} | "
                  + " | ".join(f"{100 * drop[p]:.1f}%" for p in people) + f" | {auc(labels, gains):.3f} |")


if __name__ == "__main__":
    main()
