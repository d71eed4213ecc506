"""The Issues broker's commit-message grammar: the classic documented examples first, then
the rest of the added words and id forms."""

from __future__ import annotations

import importlib.util

import pytest

from brokerage.submissions.builtins import BUILTIN_DIR

_spec = importlib.util.spec_from_file_location(
    "issues_grammar", BUILTIN_DIR / "issues" / "grammar.py"
)
assert _spec and _spec.loader
grammar = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(grammar)

SEED_EXAMPLES = [
    ("... fixes #4711 ...", [("resolve", 4711)]),  # marks issue as resolved
    ("... reopening bug 4711...", [("reopen", 4711)]),  # marks issue as open
    ("... refs ticket 4711...", [("link", 4711)]),  # links changeset to issue as comment
    ("... refs bug #4711 and #4712...", [("link", 4711), ("link", 4712)]),  # multiple issues
]


@pytest.mark.parametrize(("message", "commands"), SEED_EXAMPLES)
def test_seed_examples(message: str, commands: list[tuple[str, int]]) -> None:
    assert grammar.parse_commands(message) == commands


@pytest.mark.parametrize("word", [w for words in grammar.WORDS.values() for w in words])
@pytest.mark.parametrize("issue", ["#12", "issue 12", "bug 12", "ticket 12", "issue #12",
                                   "bug#12", "TICKET #12"])  # fmt: skip
def test_every_word_with_every_id_form(word: str, issue: str) -> None:
    expected = grammar.COMMAND_OF[word]
    for text in (f"{word} {issue}", f"Something. {word.upper()} {issue}: done", f"{word}: {issue}"):
        assert grammar.parse_commands(text) == [(expected, 12)], text


@pytest.mark.parametrize(
    ("message", "commands"),
    [
        ("Fixes issue#12, #13 & ticket 14 and bug 15",
         [("resolve", 12), ("resolve", 13), ("resolve", 14), ("resolve", 15)]),
        ("closes #1\n\nrefs #2, see bug 3", [("resolve", 1), ("link", 2), ("link", 3)]),
        ("Won't  fix #6; invalid #7; on hold: hold #8",
         [("wontfix", 6), ("invalid", 7), ("hold", 8)]),
        ("fixes #16, and again fixes #16", [("resolve", 16)]),
        ("fixes #1 refs #1", [("resolve", 1), ("link", 1)]),
        ("fix #11 and 12", [("resolve", 11)]),  # a bare number is not an issue id
    ],
)  # fmt: skip
def test_several_commands(message: str, commands: list[tuple[str, int]]) -> None:
    assert grammar.parse_commands(message) == commands


@pytest.mark.parametrize(
    "message",
    ["prefix #3", "are #4", "refactor bug 5", "issue 15 fixes nothing", "fixes", "#4711 fixed",
     "Merge branch 'fix-12'", "affixes #3", "unfixed #3", "closest #3", ""],
)  # fmt: skip
def test_no_commands(message: str) -> None:
    assert grammar.parse_commands(message) == []
