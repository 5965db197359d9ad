"""Text normalisation shared by papers and topics."""

import re
import unicodedata

# "+" and "#" stay: "C++" and "C#" are not the interest "C".
_NON_WORD = re.compile(r"[^\w+#]+|_+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
_SPACE = re.compile(r"\s+")
# An arXiv category: cs.LG, math.GT, q-bio.NC, hep-th, and old ones such as cmp-lg.
ARXIV_CATEGORY = re.compile(r"[a-z][a-z-]{0,15}(?:\.[A-Za-z][A-Za-z-]{0,15})?")


def normalise_key(text: str, max_length: int = 255) -> str:
    """A comparison key: "Diffusion  Models!" and "diffusion models" are equal."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", folded).strip()[:max_length].strip()


def clean_line(text: str) -> str:
    """One line of display text: control characters removed, spaces collapsed."""
    return _SPACE.sub(" ", _CONTROL.sub("", unicodedata.normalize("NFC", text))).strip()


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text))
