"""Collections through the Python API: isolation, identity, listing, deletion, bad names, migration.

One store for the module (real MiniLM, real Chroma on disk, real tantivy): two collections hold
near-identical handbooks (same name, same title, same text but for one fact), and nothing asked
in one may ever surface the other's chunks: not a search in any retrieval mode, not an answer,
a follow-up, a citation, nor the refusal's word statistics.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import RAG
from rag.errors import InvalidCollectionError, NotFoundError, UnknownCollectionError
from rag.retrieve import Retriever
from rag.settings import DEFAULT_COLLECTION

HANDBOOK = (
    "# Orion project\n\n"
    "The Orion project deadline is {deadline}. Dana Whit leads the Orion project from the Lisbon office. "
    "The Orion budget was approved by the steering board in spring. Weekly Orion meetings take place on "
    "Tuesdays in the blue room.\n\n"
    "# Travel\n\n"
    "Travel for the Orion project is booked through the office manager. Train tickets are preferred over "
    "flights for trips shorter than six hours."
)
FACT = {"team-a": "March 3", "team-b": "October 19"}
OTHER = {"team-a": "team-b", "team-b": "team-a"}
QUESTIONS = ["When is the Orion project deadline?", "Who leads the Orion project?", "October 19 deadline",
             "March 3 deadline", "How are train tickets booked?", "Orion"]


@pytest.fixture(scope="module")
def teams(embedder, tmp_path_factory: pytest.TempPathFactory) -> RAG:
    """A store with the handbook in team-a and team-b (one fact apart) and an unrelated note in default."""
    rag = RAG(tmp_path_factory.mktemp("collections") / "data")
    for team, deadline in FACT.items():
        rag.collection(team).add_text(HANDBOOK.format(deadline=deadline), name="handbook.md", title="Handbook")
    rag.add_text("The Velasquez lighthouse stands on a granite cliff above the harbour.", name="lighthouse.txt")
    return rag


def _ids(rag: RAG, team: str) -> set[str]:
    return rag.store.ids_for("handbook.md", collection=team)


def test_the_same_name_in_two_collections_is_two_sources_with_their_own_chunks(teams: RAG) -> None:
    listed = {(s.collection, s.source) for s in teams.sources()}
    assert listed == {("team-a", "handbook.md"), ("team-b", "handbook.md"), (DEFAULT_COLLECTION, "lighthouse.txt")}
    a, b = _ids(teams, "team-a"), _ids(teams, "team-b")
    assert a and b and not a & b  # the collection is part of every chunk id
    before = {s.collection: s for s in teams.sources()}
    # Ingesting team-a's copy again changes nothing anywhere; team-b is not touched.
    again = teams.collection("team-a").add_text(HANDBOOK.format(deadline=FACT["team-a"]), name="handbook.md",
                                                title="Handbook")
    assert again.unchanged == {"handbook.md": len(a)} and not again.added and not again.replaced
    assert _ids(teams, "team-a") == a and _ids(teams, "team-b") == b
    assert {s.collection: s for s in teams.sources()} == before


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_no_search_in_any_mode_surfaces_another_collections_chunks(teams: RAG, mode: str) -> None:
    retriever = Retriever(teams.embedder, teams.store, mode=mode)
    for team in FACT:
        mine = _ids(teams, team)
        for question in QUESTIONS:
            # k far above the collection's chunk count: a filter applied after the search would
            # pad the list with the other team's chunks; one inside the search cannot.
            hits = retriever.search(question, 50, collections=[team])
            assert {h.chunk.id for h in hits} <= mine, (mode, team, question)
            assert all(h.chunk.collection == team and FACT[OTHER[team]] not in h.text for h in hits)
    both = retriever.search("When is the Orion project deadline?", 50, collections=["team-a", "team-b"])
    assert {h.chunk.collection for h in both} == {"team-a", "team-b"}


def test_answers_follow_ups_and_citations_stay_inside_the_asked_collection(teams: RAG) -> None:
    for team, fact in FACT.items():
        view = teams.collection(team)
        first = view.ask("When is the Orion project deadline?")
        assert not first.refused and fact in first.text and FACT[OTHER[team]] not in first.text
        assert first.citations and {c.hit.chunk.collection for c in first.citations} == {team}
        assert {h.chunk.collection for h in first.sources} == {team}
        follow = view.ask("Who leads it?", [("When is the Orion project deadline?", first.text)])
        assert "Dana Whit" in follow.text
        assert {h.chunk.collection for h in follow.sources + [c.hit for c in follow.citations]} == {team}
        streamed = list(teams.ask_stream("And the deadline?", [("Who leads the Orion project?", "Dana Whit")],
                                         collection=team))
        final = streamed[-1]
        assert fact in final.text and {h.chunk.collection for h in final.sources} == {team}
        hits = view.search("deadline", k=20)
        assert hits and {h.chunk.collection for h in hits} == {team}


def test_the_refusal_counts_words_over_the_asked_collections_only(teams: RAG) -> None:
    from rag.refuse import frequencies_for

    n_a = len(_ids(teams, "team-a"))
    total, df = frequencies_for(teams.store, None, ["team-a"])(["October", "March", "Orion"])
    assert total == n_a and df["October"] == 0 and df["March"] >= 1 and df["Orion"] == n_a
    everywhere, df_all = frequencies_for(teams.store)(["October"])
    assert everywhere == teams.store.count() and df_all["October"] >= 1
    # Asked in team-a, team-b's fact is a word the scope never holds: refused, not answered from team-b.
    answer = teams.ask("Which event happens on October 19?", collection="team-a")
    assert all(h.chunk.collection == "team-a" for h in answer.sources)
    assert "October" not in answer.text


def test_collections_are_listed_with_counts_and_reads_default_to_all(teams: RAG) -> None:
    counts = {c.name: (c.sources, c.chunks) for c in teams.collections()}
    assert counts == {DEFAULT_COLLECTION: (1, 1), "team-a": (1, len(_ids(teams, "team-a"))),
                      "team-b": (1, len(_ids(teams, "team-b")))}
    assert {h.chunk.collection for h in teams.search("Orion project deadline", k=20)} >= {"team-a", "team-b"}
    assert [s.source for s in teams.sources(collection="team-b")] == ["handbook.md"]
    assert teams.search("lighthouse granite cliff", k=1, collection=DEFAULT_COLLECTION)[0].source == "lighthouse.txt"


@pytest.mark.parametrize("name", ["", "Team-A", "team a", "../etc", "team/a", "-team", "x" * 65, "tëam"])
def test_a_bad_collection_name_is_one_sentence_naming_it_and_the_rule(teams: RAG, name: str) -> None:
    for call in (lambda: teams.search("Orion", collection=name),
                 lambda: teams.add_text("Some text.", name="n.txt", collection=name) if name else teams.collection(name),
                 lambda: teams.collection(name)):
        with pytest.raises(InvalidCollectionError) as info:
            call()
        message = str(info.value)
        assert repr(name if len(name) <= 40 else name[:37] + "...") in message
        assert "lower-case letters, digits" in message and "\n" not in message and message.endswith("(e.g. team-a)")
    assert {c.name for c in teams.collections()} == {DEFAULT_COLLECTION, "team-a", "team-b"}


def test_asking_a_collection_that_does_not_exist_lists_the_existing_ones(teams: RAG) -> None:
    for call in (lambda: teams.search("Orion", collection="team-c"),
                 lambda: teams.ask("Orion?", collection=["team-a", "team-c"]),
                 lambda: teams.ask_stream("Orion?", collection="team-c"),
                 lambda: teams.sources(collection="team-c"),
                 lambda: teams.delete_collection("team-c")):
        with pytest.raises(UnknownCollectionError,
                           match=r"no collection named 'team-c'; existing collections: default, team-a, team-b$"):
            call()
    with pytest.raises(NotFoundError, match="in the collection 'team-a'.*handbook.md"):
        teams.delete("lighthouse.txt", collection="team-a")


def test_uploads_of_one_file_into_two_collections_are_two_files(embedder, tmp_path: Path) -> None:
    from ingest.files import file_url
    from tests.pdfgen import make_pdf

    rag = RAG(tmp_path / "data")
    pdf = tmp_path / "in" / "plan.pdf"
    pdf.parent.mkdir()
    make_pdf(["The Orion launch review happens in the blue room every Tuesday morning."], pdf)
    for team in ("team-a", "team-b"):
        assert rag.upload(pdf, name="plan.pdf", collection=team).added == {"plan.pdf": 1}
    files = rag.settings.files_dir
    assert (files / "team-a" / "plan.pdf").is_file() and (files / "team-b" / "plan.pdf").is_file()
    assert file_url(files, "plan.pdf", 1, "team-b") == "/files/team-b/plan.pdf#page=1"
    assert file_url(files, "plan.pdf", 1) is None  # nothing in the default collection
    assert rag.delete("plan.pdf", collection="team-b") == 1
    assert not (files / "team-b" / "plan.pdf").exists() and (files / "team-a" / "plan.pdf").is_file()
    assert [(s.collection, s.source) for s in rag.sources()] == [("team-a", "plan.pdf")]
    hit = rag.search("When is the Orion launch review?", k=1)[0]
    assert hit.chunk.collection == "team-a"
    gone = rag.delete_collection("team-a")
    assert (gone.name, gone.sources, gone.chunks) == ("team-a", 1, 1)
    assert rag.sources() == [] and not (files / "team-a" / "plan.pdf").exists()


def test_a_crashed_write_in_one_collection_is_repaired_without_touching_the_other(teams: RAG) -> None:
    from rag.types import Document

    store, journal = teams.store, teams.journal
    a, b = _ids(teams, "team-a"), _ids(teams, "team-b")
    # The new version: two sections, so two new chunks, of which the crash leaves one written.
    text = HANDBOOK.format(deadline="November 2").replace("six hours", "four hours")
    docs = [Document(source="handbook.md", text=part, kind="text", title="Handbook", section=f"part {i}",
                     collection="team-b") for i, part in enumerate(text.split("# Travel"))]
    chunks = teams.indexer.chunk(docs)
    entry = journal.begin(store, "handbook.md", old=b, new={c.id for c in chunks}, collection="team-b")
    new = [c for c in chunks if c.id not in b]
    assert len(new) >= 2
    store.add(new[:1], teams.embedder.embed([new[0].text]))  # the process dies after its first chunk...
    journal._close(entry)  # ...and its manifest lock goes with it
    assert journal.recover(store) == ["handbook.md"]
    # Rolled back: team-b is its old version again, and team-a's copy of the same name was never touched.
    assert _ids(teams, "team-b") == b and _ids(teams, "team-a") == a
    assert "November 2" not in " ".join(h.text for h in teams.search("Orion deadline", k=20))
