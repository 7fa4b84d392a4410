"""Layer 2: the polyphase normal form, equivalence proofs, the identity catalogue, checkerboard analysis."""

from .catalogue import IDENTITIES, Catalogue, Identity, Proof, bilinear_kernel
from .checkerboard import CheckerboardReport, checkerboard
from .equivalence import Counterexample, Equivalence, equivalent, matrices_agree
from .normalform import NormalForm, canonical

__all__ = [
    "NormalForm", "canonical", "Equivalence", "Counterexample", "equivalent", "matrices_agree",
    "Identity", "Proof", "Catalogue", "IDENTITIES", "bilinear_kernel", "CheckerboardReport", "checkerboard",
]
