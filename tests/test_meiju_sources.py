"""MELD / MIntRec loaders and the dialogue helpers, on generated tiny files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from polymodal.data.sources.dialogue import fix_text, preceding_context
from polymodal.data.sources.meld import load_meld
from polymodal.data.sources.mintrec import load_mintrec
from polymodal.errors import DataError, MissingDataError

_MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def _meld_rows(rows: list[tuple[str, str, str, str, int, int]]) -> str:
    lines = [f'{i},"{u}",{s},{e},{t},{d},{k},1,1,"00:00:01,000","00:00:02,000"'
             for i, (u, s, e, t, d, k) in enumerate(rows, start=1)]
    return _MELD_HEADER + "\n".join(lines) + "\n"


def write_meld(root: Path, train: str | None = None, encoding: str = "utf-8") -> Path:
    folder = root / "MELD_text"
    folder.mkdir(parents=True, exist_ok=True)
    default = _meld_rows([
        ("Hi there.", "Ross", "joy", "positive", 0, 0),
        ("You must\u2019ve had your hands full.", "Rachel", "surprise", "positive", 0, 1),
        ("Oh no.", "Ross", "sadness", "negative", 0, 2),
        ("Pivot!", "Ross", "anger", "negative", 1, 0),
        ("   ", "Monica", "neutral", "neutral", 1, 1),
        ("Later line.", "Monica", "neutral", "neutral", 1, 2),
    ])
    (folder / "train_sent_emo.csv").write_bytes((train or default).encode(encoding))
    small = _meld_rows([("Okay.", "Joey", "neutral", "neutral", 0, 0), ("Fine!", "Joey", "anger", "negative", 0, 1)])
    (folder / "dev_sent_emo.csv").write_text(small, encoding="utf-8")
    (folder / "test_sent_emo.csv").write_text(small, encoding="utf-8")
    return root


def test_fix_text_repairs_c1_mojibake_and_curly_quotes() -> None:
    assert fix_text("You must\x92ve had your hands full\x85") == "You must've had your hands full..."
    assert fix_text("company\u00e2\u20ac\u2122s") == "company's"  # UTF-8 read as cp1252
    assert fix_text("\u201cHi\u201d \u2014  there ") == '"Hi" - there'
    assert fix_text("caf\u00e9") == "caf\u00e9"  # genuine accents stay


def test_preceding_context_only_earlier_turns_of_same_dialogue() -> None:
    frame = pd.DataFrame({
        "d": ["a", "a", "b", "a", "b", None],
        "o": [2, 0, 0, 1, 1, 0],
        "t": ["third", "first", "b-first", "second", "b-second", "alone"],
    })
    ctx = preceding_context(frame, dialogue="d", order="o", text="t", max_turns=8, sep="|")
    assert ctx == ["first|second", "", "", "first", "b-first", ""]
    # Truncation keeps the most recent turns.
    assert preceding_context(frame, dialogue="d", order="o", text="t", max_turns=1, sep="|")[0] == "second"


def test_load_meld_splits_context_and_counted_skip(tmp_path: Path) -> None:
    table = load_meld(write_meld(tmp_path))
    frame = table.frame
    assert frame.groupby("split").size().to_dict() == {"test": 2, "train": 5, "valid": 2}
    assert table.skips == {"empty text": 1}
    train = table.split("train").set_index("id")
    assert train.loc["meld:train:0:1", "text"] == "You must've had your hands full."
    assert train.loc["meld:train:0:2", "context"] == "Ross: Hi there. | Rachel: You must've had your hands full."
    # No later utterance leaks into any context: each context's turns come from smaller order keys.
    for row in frame.itertuples():
        later = frame[(frame.dialogue == row.dialogue) & (frame.order > row.order)]
        for text in later.text:
            assert text not in row.context
    # Dialogue ids restart per file: train's dialogue 0 and dev's dialogue 0 are different dialogues.
    assert table.split("valid").loc[1, "context"] == "Joey: Okay."
    assert set(table.labels) == {"emotion", "sentiment"}


def test_load_meld_reads_cp1252_file(tmp_path: Path) -> None:
    text = _meld_rows([("It\u2019s me.", "Ross", "joy", "positive", 0, 0)])
    table = load_meld(write_meld(tmp_path, train=text, encoding="cp1252"))
    assert table.split("train").loc[0, "text"] == "It's me."
    assert any("Windows-1252" in line for line in table.actions)


@pytest.mark.parametrize(("row", "field", "bad"), [
    (("Hi.", "Ross", "happy", "positive", 0, 1), "Emotion", "happy"),
    (("Hi.", "Ross", "joy", "great", 0, 1), "Sentiment", "great"),
])
def test_load_meld_bad_label_names_file_row_field(tmp_path: Path, row: tuple, field: str, bad: str) -> None:
    text = _meld_rows([("Ok.", "Joey", "neutral", "neutral", 0, 0), row])
    with pytest.raises(DataError, match=rf"train_sent_emo.csv, row 2, field '{field}': unknown label '{bad}'"):
        load_meld(write_meld(tmp_path, train=text))


def test_load_meld_bad_id_and_duplicate(tmp_path: Path) -> None:
    text = _MELD_HEADER + '1,"Hi.",Ross,joy,positive,x,0,1,1,a,b\n'
    with pytest.raises(DataError, match=r"row 1, field 'Dialogue_ID': not an integer"):
        load_meld(write_meld(tmp_path, train=text))
    text = _meld_rows([("A.", "Ross", "joy", "positive", 0, 0), ("B.", "Ross", "joy", "positive", 0, 0)])
    with pytest.raises(DataError, match=r"row 2, field 'Utterance_ID'.*repeats row 1"):
        load_meld(write_meld(tmp_path, train=text))


def test_load_meld_missing_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"train_sent_emo\.csv"):
        load_meld(tmp_path)
    with pytest.raises(DataError, match=r"train_sent_emo.csv, field 'Emotion': missing column"):
        load_meld(write_meld(tmp_path, train="Utterance,Speaker,Sentiment,Dialogue_ID,Utterance_ID\n"))


def write_mintrec(root: Path, version: int, train_rows: list[str] | None = None) -> Path:
    folder = root / "MIntRec_text" / f"MIntRec-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    if version == 1:
        header = "season\tepisode\tclip\ttext\tlabel"
        rows = train_rows or ["S01\tE01\t1\tthanks a lot\tThank", "S01\tE01\t2\thello \"friend\"\tGreet"]
    else:
        header = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeakername"
        rows = train_rows or [
            "0\t3\twe are the manager.\tIntroduce\ta\tb\tsuperstore\tGlenn",
            "0\t0\thi everyone\tGreet\ta\tb\tsuperstore\tDina",
            "0\t5\tsorry about that\tApologise\ta\tb\tsuperstore\tGlenn",
            "1\t0\tsomething else\tUNK\ta\tb\tfriends\tRoss",
        ]
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        body = rows if name == "train.tsv" else rows[:1]
        (folder / name).write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    return root


def test_load_mintrec_v2_context_and_oos(tmp_path: Path) -> None:
    table = load_mintrec(write_mintrec(tmp_path, 2), version=2)
    train = table.split("train").set_index("id")
    assert table.skips == {"out-of-scope (UNK)": 1}
    assert train.loc["mintrec2:train:0:5", "context"] == "Dina: hi everyone | Glenn: we are the manager."
    assert train.loc["mintrec2:train:0:0", "context"] == ""
    with_oos = load_mintrec(tmp_path, version=2, include_oos=True)
    assert "UNK" in with_oos.labels["intent"] and (with_oos.frame.intent == "UNK").sum() == 1


def test_load_mintrec_v1_no_dialogues_quotes_kept(tmp_path: Path) -> None:
    table = load_mintrec(write_mintrec(tmp_path, 1), version=1)
    train = table.split("train")
    assert train.context.tolist() == ["", ""]
    assert train.text.tolist()[1] == 'hello "friend"'
    assert len(table.labels["intent"]) == 20


def test_load_mintrec_bad_label_names_row(tmp_path: Path) -> None:
    write_mintrec(tmp_path, 2, ["0\t0\thi\tGreet\ta\tb\ts\tX", "0\t1\tyo\tShout\ta\tb\ts\tY"])
    with pytest.raises(DataError, match=r"train.tsv, row 2, field 'Label': unknown label 'Shout'"):
        load_mintrec(tmp_path, version=2)
