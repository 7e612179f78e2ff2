"""Eight gradio_client sessions asking at once each get their own answer and sources."""

from __future__ import annotations

import threading
from pathlib import Path

from gradio_client import handle_file

from tests.ui.conftest import FACTS, _client


def test_eight_simultaneous_sessions_get_their_own_answers(client, ui_server, facts_pdf: Path) -> None:
    [uploaded] = client.predict([handle_file(str(facts_pdf))], "", api_name="/upload")["files"]
    assert uploaded["status"] == "added"

    barrier = threading.Barrier(len(FACTS))
    results: dict[int, dict] = {}
    errors: dict[int, BaseException] = {}

    def session(i: int) -> None:
        try:
            for c in _client(ui_server.url):
                _, question, _ = FACTS[i]
                barrier.wait(timeout=60)
                # k=1: each answer may quote only the one page that answers it, so any other
                # page's words in it would come from another session.
                updates = list(c.submit(question, None, 1, api_name="/ask"))
                final = updates[-1]
                # A follow-up in the same session carries that session's own history.
                follow = c.predict(question, [[question, final["answer"]]], 1, api_name="/ask")
                results[i] = {"first": final, "follow": follow, "updates": updates}
        except BaseException as exc:  # reported below, with the session number
            errors[i] = exc

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(FACTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sorted(results) == list(range(len(FACTS)))
    for i, (fact, question, word) in enumerate(FACTS):
        for answer in (results[i]["first"], results[i]["follow"]):
            assert answer["done"] is True
            pages = [c["page"] for c in answer["citations"]]
            assert pages == [i + 1], (question, answer["citations"])
            assert word in answer["citations"][0]["text"], (question, answer)
            citation = answer["citations"][0]
            assert citation["link"] == f"/view/facts.pdf?page={i + 1}&chunk={citation['id']}#cited"
            # No other session's fact leaked into this answer.
            others = [w for j, (_, _, w) in enumerate(FACTS) if j != i]
            assert not any(w in answer["answer"] for w in others), (question, answer["answer"])
        streamed = [u for u in results[i]["updates"] if not u["done"]]
        assert all(not any(w in u["answer"] for w in others) for u in streamed)
