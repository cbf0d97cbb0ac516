"""Recall: NAME's past messages in the prompt, the same in training and in a chat."""
from datetime import datetime

from tiny import LINES, likeme_cli, whatsapp_chat

from likeme.prompts import Turn, chat_messages, system_prompt


def test_system_prompt_lists_what_was_recalled():
    assert system_prompt("Ana", ["pizza obv", "two\nlines"]) == (
        "You are Ana. Write Ana's next message in this chat, in Ana's own words and style.\n"
        "Things Ana has said before:\n- pizza obv\n- two / lines")
    assert chat_messages([Turn("Sam", "hi")], "Ana", False, ["pizza obv"])[0]["content"].endswith("- pizza obv")
    assert system_prompt("Ana") == system_prompt("Ana", [])


def test_training_recall_never_shows_the_replys_own_session(tmp_path, tiny_st):
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.use import recall

    with Store(tmp_path / "s.db") as store:
        store.ingest_path(whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club.txt", 12, datetime(2024, 1, 1, 18)))
        train_s, held_s, _ = examples.reply_sessions(store, "Ana", heldout=0.2)
    assert recall.lines_of([(None, False, [Turn("Sam", "hi"), Turn("Ana", "hey\nwhat's up")])], "Ana") == ["hey", "what's up"]
    memory = recall.for_training(train_s, "Ana", 2, str(tiny_st))
    for group in (train_s, held_s):
        found = examples.replies(group, "Ana")
        recalled = memory(found, group)
        assert len(recalled) == len(found) and all(len(r) <= 2 for r in recalled)
        pool = set(recall.lines_of(train_s, "Ana"))  # training sessions only, also for held-out replies
        for r, lines in zip(found, recalled):
            own = set(recall.lines_of([group[r.session]], "Ana"))
            assert set(lines) <= pool - own and r.reply.text not in lines
        assert any(recalled)


def test_a_voice_trained_with_recall_recalls_in_a_chat(tmp_path, tiny_lm, tiny_st):
    import likeme
    from likeme.data.store import Store
    from likeme.recipes.voice import VoiceConfig, train_voice

    db = tmp_path / "s.db"
    with Store(db) as store:
        store.ingest_path(whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club.txt", 20, datetime(2024, 1, 1, 18)))
    run = train_voice(VoiceConfig(name="Ana", db=str(db), base=str(tiny_lm), recall=2, recall_model=str(tiny_st),
                                  max_steps=2, batch_size=4, grad_accum=1, eval_every=2, out=str(tmp_path / "run")), progress=False)
    voice = likeme.load(run)
    assert voice.recall is not None and voice.recall.k == 2
    prompt = voice.tokenizer.decode(voice.prompt_ids(["Plans for tonight?"]))
    said = prompt.split("Things Ana has said before:\n")[1].split("<|im_end|>")[0].splitlines()
    assert len(said) == 2 and all(line[2:] in LINES["Ana"] for line in said)  # Ana's own messages, from the store
    assert "Things Ana" not in voice.tokenizer.decode(likeme.load(run, recall=0).prompt_ids(["Plans for tonight?"]))
    p = likeme_cli("chat", run, "-m", "Plans for tonight?", "--recall", 1, "--max-new-tokens", 3, "--seed", 0)
    assert p.returncode == 0, p.stderr
