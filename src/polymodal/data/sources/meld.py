"""MELD, text only (declare-lab/MELD): Friends utterances with emotion (7) and sentiment (3) labels.

Layout under the data directory::

    MELD_text/train_sent_emo.csv   9,989 utterances
    MELD_text/dev_sent_emo.csv     1,109   (our "valid" split)
    MELD_text/test_sent_emo.csv    2,610

Columns used: ``Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID`` (the others,
``Sr No., Season, Episode, StartTime, EndTime``, are ignored). Both label sets sit on every
utterance, so MELD is the *paired-label* case. The official train/dev/test split is kept; dialogue
ids restart in each file, so a dialogue is keyed ``"<split>:<Dialogue_ID>"``.

Handling, all explicit:

* encodings: a file that is not valid UTF-8 is read as Windows-1252 (noted in ``actions``); every
  utterance goes through :func:`~polymodal.data.sources.dialogue.fix_text`, which turns the
  release's ``"\\x92"``-style C1 apostrophes, UTF-8 mojibake (``"â€™"``) and curly quotes into plain
  ASCII punctuation (the number of utterances changed is noted in ``actions``);
* an utterance that is empty after repair is skipped and counted (``skips["empty text"]``);
* a label outside the 7 emotions / 3 sentiments, a non-integer dialogue or utterance id, or a
  repeated (dialogue, utterance) pair raises a :class:`~polymodal.errors.DataError` naming the file,
  the row (1-based, header excluded) and the field;
* ``context``: the earlier utterances of the same dialogue (``"Speaker: text"``, last
  ``context_turns``), never a later one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from polymodal.data.sources.dialogue import (
    UtteranceTable,
    fix_text,
    parse_int,
    parse_label,
    preceding_context,
    read_text_file,
    require_columns,
)
from polymodal.errors import DataError, MissingDataError

__all__ = ["EMOTIONS", "SENTIMENTS", "SPLIT_FILES", "load_meld"]

EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = ("negative", "neutral", "positive")
SPLIT_FILES = {"train": "train_sent_emo.csv", "valid": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
FOLDER = "MELD_text"
_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")


def _read_split(path: Path, split: str, table: UtteranceTable) -> pd.DataFrame:
    text = read_text_file(path, table.actions)
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    require_columns(raw, _COLUMNS, path)
    rows, seen, repaired = [], {}, 0
    for i, rec in enumerate(raw.to_dict("records"), start=1):
        dia = parse_int(rec["Dialogue_ID"], path=path, row=i, field_name="Dialogue_ID")
        utt = parse_int(rec["Utterance_ID"], path=path, row=i, field_name="Utterance_ID")
        if (dia, utt) in seen:
            raise DataError(f"(Dialogue_ID, Utterance_ID) = ({dia}, {utt}) repeats row {seen[dia, utt]}",
                            file=path, row=i, field="Utterance_ID")
        seen[dia, utt] = i
        emotion = parse_label(rec["Emotion"], EMOTIONS, path=path, row=i, field_name="Emotion")
        sentiment = parse_label(rec["Sentiment"], SENTIMENTS, path=path, row=i, field_name="Sentiment")
        utterance = fix_text(rec["Utterance"])
        repaired += utterance != rec["Utterance"].strip()
        if not utterance:
            table.skips["empty text"] = table.skips.get("empty text", 0) + 1
            continue
        rows.append({
            "id": f"meld:{split}:{dia}:{utt}", "split": split, "dialogue": f"{split}:{dia}", "order": utt,
            "speaker": fix_text(rec["Speaker"]) or "?", "text": utterance, "emotion": emotion, "sentiment": sentiment,
        })
    if repaired:
        table.actions.append(f"{path.name}: {repaired} utterances had encoding/punctuation repaired (fix_text)")
    return pd.DataFrame(rows)


def load_meld(data_dir: str | Path, *, context_turns: int = 8) -> UtteranceTable:
    """Read MELD's three official splits.

    Args:
        data_dir: the data directory holding ``MELD_text/``.
        context_turns: how many earlier utterances of the dialogue go into ``context`` (0: none).

    Returns:
        An :class:`UtteranceTable` with label columns ``emotion`` and ``sentiment``.

    Raises:
        MissingDataError: a split file is absent.
        DataError: a bad cell (file, row and field named).
    """
    folder = Path(data_dir) / FOLDER
    table = UtteranceTable(frame=pd.DataFrame(), labels={"emotion": EMOTIONS, "sentiment": SENTIMENTS})
    parts = []
    for split, name in SPLIT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise MissingDataError(f"MELD file not found: {path} (declare-lab/MELD, data/MELD/{name})")
        parts.append(_read_split(path, split, table))
    frame = pd.concat(parts, ignore_index=True)
    frame["context"] = preceding_context(frame, dialogue="dialogue", order="order", text="text", speaker="speaker",
                                         max_turns=context_turns)
    table.frame = frame
    return table
