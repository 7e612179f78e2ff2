"""Evaluation: retrieval quality on public benchmarks, through the product's own ingestion and search.

* ``evaluate_beir``: nDCG@k, recall@k, MRR@k on a BEIR data set (e.g. SciFact).
* ``evaluate_squad``: answer-bearing hit@k and MRR on SQuAD v1.1.

Both return flat dicts (metrics, ``n``, ``seconds`` and the settings used); the CLI
(``rag eval beir|squad``) prints them as a table or as one JSON object.
"""

from __future__ import annotations

from rag.eval.beir import evaluate_beir, load_beir
from rag.eval.common import EvalDataError
from rag.eval.squad import evaluate_squad, load_squad

__all__ = ["EvalDataError", "evaluate_beir", "evaluate_squad", "load_beir", "load_squad"]
