"""PRISM loader on tiny raw files in the HF schema (tests/data/prism/)."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from jaxmethods.data import prism
from jaxmethods.data.prism import load_prism_pairs

FIXTURE = Path(__file__).parent / "prism"


def test_filters_and_counts():
    pairs, stats = load_prism_pairs(FIXTURE)
    # user1: one of 6 dialogues has no qualified turn -> 5 < 6; user2: 0 completed; user4: 3.
    assert list(dict.fromkeys(p.user_id for p in pairs)) == ["user0", "user3", "user5"]
    assert stats.survey_users == 6 and stats.users_without_conversations == 1
    assert stats.dialogues_without_qualified_turn == 1
    assert stats.users_below_min_dialogues == 2
    assert (stats.users, stats.dialogues) == (3, 7 + 6 + 6)
    # user0: 4 dialogues x (3 + 1) + 3 dialogues x 2; user3: 3 + 5 x 1; user5: 6 x 3.
    assert Counter(p.user_id for p in pairs) == {"user0": 22, "user3": 8, "user5": 18}
    assert stats.pairs == len(pairs) == 48
    assert load_prism_pairs(FIXTURE, min_dialogues=5)[1].users == 4  # user1 back in


def test_pairs_history_and_scores():
    pairs, _ = load_prism_pairs(FIXTURE)
    first = [p for p in pairs if p.conversation_id == "c00"]
    assert [p.rejected for p in first] == [
        "c00 t0 bad0",
        "c00 t0 bad1",
        "c00 t0 bad2",
        "c00 t1 bad0",
    ]
    assert first[0].prompt == [{"role": "user", "content": "c00 t0 question"}]
    assert (first[0].chosen, first[0].chosen_score, first[2].rejected_score) == (
        "c00 t0 good",
        90,
        38,
    )
    assert first[3].prompt == [
        {"role": "user", "content": "c00 t0 question"},
        {"role": "assistant", "content": "c00 t0 good"},
        {"role": "user", "content": "c00 t1 question"},
    ]
    # c30: turn 1 has no rejected response, so it gives no pair and is left out of the history.
    c30 = [p for p in pairs if p.conversation_id == "c30"]
    assert [p.rejected for p in c30] == ["c30 t0 bad0", "c30 t2 bad0", "c30 t2 bad1"]
    assert [m["content"] for m in c30[1].prompt] == [
        "c30 t0 question",
        "c30 t0 good",
        "c30 t2 question",
    ]
    assert len([p for p in pairs if p.conversation_id == "c50"][2].prompt) == 5
    # dialogues keep conversations.jsonl order within a user
    order = list(dict.fromkeys(p.conversation_id for p in pairs if p.user_id == "user0"))
    file_order = [
        json.loads(line)["conversation_id"]
        for line in (FIXTURE / "conversations.jsonl").read_text().splitlines()
        if json.loads(line)["user_id"] == "user0"
    ]
    assert order == file_order


def _copy_with(tmp_path, name, lineno, edit):
    shutil.copy(FIXTURE / "survey.jsonl", tmp_path / "survey.jsonl")
    shutil.copy(FIXTURE / "conversations.jsonl", tmp_path / "conversations.jsonl")
    path = tmp_path / name
    lines = path.read_text().splitlines()
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def _edit_json(fn):
    def edit(line):
        row = json.loads(line)
        fn(row)
        return json.dumps(row)

    return edit


@pytest.mark.parametrize(
    "name, lineno, edit, message",
    [
        ("survey.jsonl", 2, lambda s: s[:-5], r"survey.jsonl:2: malformed JSON"),
        (
            "survey.jsonl",
            1,
            _edit_json(lambda r: r.pop("num_completed_conversations")),
            r"survey.jsonl:1: missing field 'num_completed_conversations'",
        ),
        (
            "conversations.jsonl",
            4,
            _edit_json(lambda r: r.pop("conversation_history")),
            r"conversations.jsonl:4: missing field 'conversation_history'",
        ),
        (
            "conversations.jsonl",
            5,
            _edit_json(lambda r: r.update(user_id="ghost")),
            r"conversations.jsonl:5: user_id 'ghost' does not appear",
        ),
        (
            "conversations.jsonl",
            6,
            _edit_json(lambda r: r["conversation_history"][1].update(turn=7)),
            r"conversations.jsonl:6: conversation_history\[1\]: turn 7 is outside",
        ),
        (
            "conversations.jsonl",
            7,
            _edit_json(lambda r: r["conversation_history"][0].pop("role")),
            r"conversations.jsonl:7: conversation_history\[0\]: missing field 'role'",
        ),
        (
            "conversations.jsonl",
            8,
            _edit_json(lambda r: r.update(conversation_turns="2")),
            r"conversations.jsonl:8: field 'conversation_turns' must be int",
        ),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, name, lineno, edit, message):
    _copy_with(tmp_path, name, lineno, edit)
    with pytest.raises(ValueError, match=message):
        load_prism_pairs(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"survey\.jsonl does not exist"):
        load_prism_pairs(tmp_path)
    (tmp_path / "x.jsonl").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        load_prism_pairs(tmp_path / "x.jsonl")


def test_hf_repo_id_downloads_raw_files(monkeypatch):
    calls = []

    def fake_download(repo_id, filename, *, repo_type, revision=None):
        calls.append((repo_id, filename, repo_type, revision))
        return str(FIXTURE / filename)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    pairs, stats = load_prism_pairs(prism.HF_REPO_ID, revision="abc")
    assert stats.pairs == 48 and len(pairs) == 48
    assert calls == [
        ("HannahRoseKirk/prism-alignment", "survey.jsonl", "dataset", "abc"),
        ("HannahRoseKirk/prism-alignment", "conversations.jsonl", "dataset", "abc"),
    ]
