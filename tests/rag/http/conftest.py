"""Fixtures for the HTTP edge: the test PDF of one fact per page, the real headless server."""

from __future__ import annotations

from pathlib import Path

import pytest

# One topic per page: a fact, the question that finds it, a word only that page has; two more
# sentences on the same topic, so an extract quotes only that page.
FACTS = [
    ("The lighthouse keeper Marta Velasquez painted the lighthouse tower bright red in 1911.",
     "Who painted the lighthouse tower red?", "Velasquez"),
    ("The Zentara glacier lost forty meters of ice thickness between 1980 and 2020.",
     "How much ice thickness did the Zentara glacier lose?", "Zentara"),
    ("Chef Ottavio Brenn invented the saffron pumpkin risotto at his restaurant in Bergamo.",
     "Who invented the saffron pumpkin risotto?", "Brenn"),
    ("The Corvid-9 satellite was launched from Kourou to map the salinity of the oceans.",
     "What does the Corvid-9 satellite map?", "Corvid"),
    ("The chess prodigy Ilse Marnow won the regional chess championship at the age of eleven.",
     "At what age did Ilse Marnow win the chess championship?", "Marnow"),
    ("Beekeepers in the valley of Oressa harvest their lavender honey every August.",
     "When do the beekeepers of Oressa harvest lavender honey?", "Oressa"),
    ("The violin maker Tomas Greeve carved his violins from maple wood seasoned for thirty years.",
     "What wood did the violin maker Tomas Greeve use?", "Greeve"),
    ("The Halvard railway tunnel under the mountain pass is nine kilometers long.",
     "How long is the Halvard railway tunnel?", "Halvard"),
]
MORE = [
    "The Velasquez lighthouse stands on a granite cliff above the harbour. Velasquez kept its lamp lit for forty years.",
    "Scientists have measured the Zentara glacier every summer since 1980. The Zentara ice now ends in a lake.",
    "Brenn opened his Bergamo restaurant in 1975. Brenn cooks the risotto with pumpkin from his own garden.",
    "Corvid-9 weighs two tonnes and carries a microwave radiometer. The Corvid-9 mission is planned to last seven years.",
    "Marnow learned chess from her grandfather in Graz. Marnow later became an international master.",
    "The Oressa valley has more than two hundred hives. Oressa honey is sold at the market in the spring.",
    "Greeve worked in a small workshop in Cremona. A Greeve violin takes about three months to make.",
    "Construction of the Halvard tunnel took eleven years. Halvard trains cross the pass in six minutes.",
]


def fact_pages() -> list[str]:
    """The text of each page of ``facts.pdf``."""
    return [f"{fact} {more}" for (fact, _, _), more in zip(FACTS, MORE)]


@pytest.fixture
def facts_pdf(tmp_path: Path) -> Path:
    """``facts.pdf``: page N holds FACTS[N-1] and nothing else."""
    from tests.pdfgen import make_pdf

    path = tmp_path / "upload" / "facts.pdf"
    path.parent.mkdir()
    make_pdf(fact_pages(), path, title="Facts")
    return path


@pytest.fixture
def api_server(rag):
    """The real headless app (API, /files; no Gradio) over a fresh store, on a free 127.0.0.1 port."""
    from rag.http.app import create_server

    server = create_server(rag, "127.0.0.1", 0, headless=True).start()
    yield server
    server.stop()
