"""Collections from the command line: ingest --collection, search/ask/chat --collection, collections, delete.

One store for the module; the two teams' handbooks (tests.rag.test_collections) are ingested
as files with the same name, and no command ever prints the other team's chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from tests.rag.test_collections import FACT, HANDBOOK, OTHER


def _run(data: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--data-dir", str(data), *args], catch_exceptions=False, input=input)


@pytest.fixture(scope="module")
def data(embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-collections")
    for team, fact in FACT.items():
        folder = root / team
        folder.mkdir()
        (folder / "handbook.md").write_text(HANDBOOK.format(deadline=fact), encoding="utf-8")
        result = _run(root / "data", "ingest", str(folder / "handbook.md"), "--collection", team, "--no-progress")
        assert result.exit_code == 0, result.output
        assert f"into the collection {team}: 1 added" in result.stdout
    again = _run(root / "data", "ingest", str(root / "team-a" / "handbook.md"), "--collection", "team-a", "--json")
    assert json.loads(again.stdout)["unchanged"] == {"handbook.md": 2}
    return root / "data"


def test_search_and_ask_print_only_the_asked_collection(data: Path) -> None:
    for team, fact in FACT.items():
        out = json.loads(_run(data, "search", "When is the Orion project deadline?", "-k", "20", "--collection",
                              team, "--json").stdout)
        assert out["hits"] and {h["collection"] for h in out["hits"]} == {team}
        assert all(FACT[OTHER[team]] not in h["text"] for h in out["hits"])
        text = _run(data, "search", "Orion deadline", "--collection", team).stdout
        assert f"(collection {team})" in text and f"(collection {OTHER[team]})" not in text
        answer = json.loads(_run(data, "ask", "When is the Orion project deadline?", "--collection", team,
                                 "--json").stdout)
        assert fact in answer["answer"] and {c["collection"] for c in answer["citations"]} == {team}
        printed = _run(data, "ask", "When is the Orion project deadline?", "--collection", team).stdout
        assert fact in printed and FACT[OTHER[team]] not in printed
    both = json.loads(_run(data, "search", "Orion deadline", "-k", "20", "--collection", "team-a",
                           "--collection", "team-b", "--json").stdout)
    assert {h["collection"] for h in both["hits"]} == {"team-a", "team-b"}


def test_chat_follow_ups_stay_in_the_collection(data: Path) -> None:
    result = _run(data, "chat", "--collection", "team-b",
                  input="When is the Orion project deadline?\nWho leads it?\nAnd the deadline?\n")
    assert result.exit_code == 0, result.output
    assert FACT["team-b"] in result.stdout and "Dana Whit" in result.stdout and FACT["team-a"] not in result.stdout
    assert "(collection team-b)" in result.stdout and "(collection team-a)" not in result.stdout


def test_collections_are_listed_and_a_whole_one_deleted(data: Path, tmp_path: Path) -> None:
    listed = json.loads(_run(data, "collections", "--json").stdout)
    assert listed == [{"name": "team-a", "sources": 1, "chunks": 2}, {"name": "team-b", "sources": 1, "chunks": 2}]
    assert "team-a  (1 source(s), 2 chunks)" in _run(data, "collections").stdout
    sources = json.loads(_run(data, "sources", "--collection", "team-b", "--json").stdout)
    assert [(s["source"], s["collection"]) for s in sources] == [("handbook.md", "team-b")]
    note = tmp_path / "note.txt"
    note.write_text("Kites fly well on the windy beach in September.", encoding="utf-8")
    assert _run(data, "ingest", str(note), "--collection", "scratch").exit_code == 0
    result = _run(data, "delete", "--collection", "scratch")
    assert result.exit_code == 0 and result.stdout.strip() == "Deleted the collection scratch: 1 source(s), 1 chunks."
    assert [c["name"] for c in json.loads(_run(data, "collections", "--json").stdout)] == ["team-a", "team-b"]
    missing = _run(data, "delete", "handbook.md")  # not in the default collection
    assert missing.exit_code != 0 and "No source named 'handbook.md' is indexed" in missing.output


@pytest.mark.parametrize("args", [("search", "Orion", "--collection", "Team A"),
                                  ("ingest", "x.txt", "--collection", "a/b"),
                                  ("ask", "Orion?", "--collection", "")])
def test_a_bad_collection_name_is_one_line_and_a_failure(data: Path, args: tuple[str, ...]) -> None:
    result = _run(data, *args)
    assert result.exit_code != 0
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "is not valid: use 1 to 64 lower-case letters" in line
    assert repr(args[-1]) in line and "Traceback" not in result.output


def test_an_unknown_collection_lists_the_existing_ones(data: Path) -> None:
    result = _run(data, "search", "Orion", "--collection", "team-c")
    assert result.exit_code != 0
    assert "There is no collection named 'team-c'; existing collections: team-a, team-b" in result.output
