"""Word-parts: how the guard compares a local name with text about to be logged.

A name such as `SMITH ANN  19600102`, `X.Smith^Ann_1960-01-02` or `SmithAnn` is split into the parts a reader would
see as words: on spaces and punctuation, at changes of case (`SmithAnn` → smith, ann) and between letters and
digits. Both sides (local names and medprobe's public vocabulary, and the text being checked) are split the same way,
after Unicode NFC normalisation and case folding, so that `Müller` written decomposed (NFD) in a folder name still
matches `Müller` composed in a message.
"""

from __future__ import annotations

import re
import unicodedata

#: Runs of letters or of digits (Unicode-aware): punctuation, spaces and `_` separate them.
_RUN = re.compile(r"[^\W\d_]+|\d+")
#: Decimal numbers in text (metric values, probabilities): a number is never a name, so its digits are not parts.
_DECIMAL = re.compile(r"\d+\.\d+(?:[eE][-+]?\d+)?")


def normalised(text: str) -> str:
    """NFC-normalised and case-folded: the form every comparison uses."""
    return unicodedata.normalize("NFC", text).casefold()


def word_parts(text: str) -> list[str]:
    """The word-parts of `text`, normalised (see the module docstring)."""
    composed = unicodedata.normalize("NFC", text)
    parts: list[str] = []
    for run in _RUN.findall(composed):
        if run.isdigit():
            parts.append(run)
        else:
            parts += [normalised(p) for p in _case_parts(run)]
    return parts


def _case_parts(letters: str) -> list[str]:
    """A run of letters split where a new word starts: an upper-case letter after a lower-case one (`SmithAnn`),
    or the last upper-case letter of an upper-case run followed by a lower-case one (`HTMLReport` → HTML, Report)."""
    starts = [0] + [i for i in range(1, len(letters))
                    if letters[i].isupper() and (letters[i - 1].islower()
                                                 or (i + 1 < len(letters) and letters[i + 1].islower()))]
    return [letters[a:b] for a, b in zip(starts, [*starts[1:], len(letters)], strict=True)]


def text_parts(text: str) -> set[str]:
    """The word-parts of text about to be logged, without the digits of decimal numbers."""
    return set(word_parts(_DECIMAL.sub(" ", text)))
