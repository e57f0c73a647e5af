"""The public vocabulary: every word medprobe may write by itself, so that a local folder sharing one is not a leak.

What leaves a site is built from spec names, label values, model cards and medprobe's own message templates. The
templates are the string literals of medprobe's source (docstrings aside): a word there is one medprobe writes
whatever the data, so a folder called `demo`, `lesion`, `audit` or `robust` identifies no one when the same word
appears in a note. Folder and file names made of such words only are never looked for by the guard; every other
word-part of a local name is.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from medprobe.privacy.words import word_parts

_PACKAGE = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def template_words() -> frozenset[str]:
    """The word-parts of every string literal in medprobe's modules, docstrings left out (read once a process)."""
    words: set[str] = set()
    for module in sorted(_PACKAGE.rglob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree) if _has_docstring(node)}  # type: ignore
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words.update(word_parts(node.value))
    return frozenset(words)


def public_vocabulary(words: Iterable[str]) -> frozenset[str]:
    """medprobe's template words and the word-parts of `words` (names the spec declares, label values, card
    texts)."""
    return template_words() | {part for word in words for part in word_parts(str(word))}


def _has_docstring(node: ast.AST) -> bool:
    if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) or not node.body:
        return False
    first = node.body[0]
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
