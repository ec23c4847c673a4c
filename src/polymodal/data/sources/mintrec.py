"""MIntRec (thuiar/MIntRec, 20 intents) and MIntRec2.0 (thuiar/MIntRec2.0, 30 intents), text only.

Layout under the data directory::

    MIntRec_text/MIntRec-1/{train,dev,test}.tsv   season, episode, clip, text, label
    MIntRec_text/MIntRec-2/{train,dev,test}.tsv   Dialogue_id, Utterance_id, Text, Label,
                                                  Start_timestamp, End_timestamp, Source, speakername

The official splits are kept (``dev`` is our ``"valid"``). MIntRec-1 has no dialogue ids (a clip is
a single utterance), so its ``context`` is empty. MIntRec2.0 has dialogue ids and speakers; a
dialogue is keyed ``"<split>:<Dialogue_id>"`` and ``context`` holds its earlier utterances only.

MIntRec2.0 is published with 30 in-scope intents plus out-of-scope utterances (label ``UNK``). The
copy under ``shared/data`` holds no ``UNK`` row (in-scope only); if a copy has them they are kept
as the class ``"UNK"`` when ``include_oos`` is set, otherwise skipped and counted.

Handling: texts go through :func:`~polymodal.data.sources.dialogue.fix_text`; an empty text is
skipped and counted; an unknown label or a non-integer id raises a
:class:`~polymodal.errors.DataError` naming the file, the row (1-based, header excluded) and the
field. The files are read with quoting off (a ``"`` inside an utterance is text, not a quote).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

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

__all__ = ["INTENTS_V1", "INTENTS_V2", "OOS", "load_mintrec"]

INTENTS_V1 = ("Advise", "Agree", "Apologise", "Arrange", "Ask for help", "Care", "Comfort", "Complain",
              "Criticize", "Flaunt", "Greet", "Inform", "Introduce", "Joke", "Leave", "Oppose", "Praise", "Prevent",
              "Taunt", "Thank")
INTENTS_V2 = ("Acknowledge", "Advise", "Agree", "Apologise", "Arrange", "Ask for help", "Asking for opinions", "Care",
              "Comfort", "Complain", "Confirm", "Criticize", "Doubt", "Emphasize", "Explain", "Flaunt", "Greet",
              "Inform", "Introduce", "Invite", "Joke", "Leave", "Oppose", "Plan", "Praise", "Prevent", "Refuse",
              "Taunt", "Thank", "Warn")
OOS = "UNK"
SPLIT_FILES = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}
FOLDER = "MIntRec_text"


def _read_split(path: Path, split: str, version: int, include_oos: bool, table: UtteranceTable) -> pd.DataFrame:
    text = read_text_file(path, table.actions)
    raw = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    classes = table.labels["intent"]
    if version == 1:
        require_columns(raw, ("season", "episode", "clip", "text", "label"), path)
    else:
        require_columns(raw, ("Dialogue_id", "Utterance_id", "Text", "Label", "speakername"), path)
    rows, seen = [], {}
    for i, rec in enumerate(raw.to_dict("records"), start=1):
        label_field = "label" if version == 1 else "Label"
        if rec[label_field].strip().upper() == OOS and not include_oos:
            table.skips["out-of-scope (UNK)"] = table.skips.get("out-of-scope (UNK)", 0) + 1
            continue
        intent = parse_label(rec[label_field], classes, path=path, row=i, field_name=label_field)
        if version == 1:
            clip = parse_int(rec["clip"], path=path, row=i, field_name="clip")
            key: tuple = (rec["season"].strip(), rec["episode"].strip(), clip)
            uid, dialogue, order, speaker, raw_text = f"{key[0]}{key[1]}:{clip}", None, clip, "?", rec["text"]
        else:
            dia = parse_int(rec["Dialogue_id"], path=path, row=i, field_name="Dialogue_id")
            utt = parse_int(rec["Utterance_id"], path=path, row=i, field_name="Utterance_id")
            key = (dia, utt)
            uid, dialogue, order = f"{dia}:{utt}", f"{split}:{dia}", utt
            speaker, raw_text = fix_text(rec["speakername"]) or "?", rec["Text"]
        if key in seen:
            raise DataError(f"utterance {key} repeats row {seen[key]}", file=path, row=i,
                            field="clip" if version == 1 else "Utterance_id")
        seen[key] = i
        utterance = fix_text(raw_text)
        if not utterance:
            table.skips["empty text"] = table.skips.get("empty text", 0) + 1
            continue
        rows.append({"id": f"mintrec{version}:{split}:{uid}", "split": split, "dialogue": dialogue, "order": order,
                     "speaker": speaker, "text": utterance, "intent": intent})
    return pd.DataFrame(rows)


def load_mintrec(data_dir: str | Path, *, version: Literal[1, 2] = 2, include_oos: bool = False,
                 context_turns: int = 8) -> UtteranceTable:
    """Read one MIntRec version's three official splits.

    Args:
        data_dir: the data directory holding ``MIntRec_text/``.
        version: 1 (MIntRec, 20 intents, no dialogues) or 2 (MIntRec2.0, 30 intents, dialogues).
        include_oos: keep out-of-scope (``UNK``) rows as a 31st class (version 2 only).
        context_turns: earlier utterances kept in ``context`` (version 2; version 1 has none).

    Returns:
        An :class:`UtteranceTable` with the label column ``intent``.
    """
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    folder = Path(data_dir) / FOLDER / f"MIntRec-{version}"
    classes = INTENTS_V1 if version == 1 else INTENTS_V2 + ((OOS,) if include_oos else ())
    table = UtteranceTable(frame=pd.DataFrame(), labels={"intent": classes})
    parts = []
    for split, name in SPLIT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise MissingDataError(f"MIntRec file not found: {path}")
        parts.append(_read_split(path, split, version, include_oos, table))
    frame = pd.concat(parts, ignore_index=True)
    if version == 1:
        frame["context"] = ""
    else:
        frame["context"] = preceding_context(frame, dialogue="dialogue", order="order", text="text",
                                             speaker="speaker", max_turns=context_turns)
    table.frame = frame
    return table
