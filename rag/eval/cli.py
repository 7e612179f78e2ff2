"""`rag eval ...`: one subcommand per benchmark; each prints a table, or one JSON object with --json.

Every subcommand returns a flat dict of metrics and settings; a later evaluation (answers,
follow-ups, refusals) is one more subcommand, or more keys in the same dict.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from rag.errors import RagError


class _EvalGroup(click.Group):
    """Project errors become one line, also when the group runs on its own (as in tests)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RagError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_EvalGroup)
def eval_group() -> None:
    """Measure retrieval quality on public benchmarks (fresh temporary store each run).

    Progress goes to stderr; stdout gets a table, or exactly one JSON object with --json.
    """


def _common_options(fn: Callable) -> Callable:
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table."),
        click.option("--chunk-tokens", type=int, default=None,
                     help="Chunk size in word pieces (default: setting chunk_tokens)."),
        click.option("--chunk-overlap", type=int, default=None,
                     help="Chunk overlap in word pieces (default: setting chunk_overlap)."),
        click.option("--retrieval-mode", type=click.Choice(["dense", "keyword", "hybrid"]), default=None,
                     help="Retrieval mode (default: setting retrieval_mode)."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bars."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(chunk_tokens: int | None, chunk_overlap: int | None, retrieval_mode: str | None):
    from rag.eval.common import resolve_settings

    return resolve_settings(None, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
                            retrieval_mode=retrieval_mode)


def _report(result: dict[str, Any], *, as_json: bool, title: str, metrics: Iterable[str]) -> None:
    from rag.eval.common import format_table

    sys.stderr.flush()
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        click.echo(format_table(title, result, metrics))


def _cutoffs(values: tuple[str, ...]) -> list[int]:
    out = []
    for value in values:
        for part in value.replace(" ", ",").split(","):
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise click.BadParameter(f"{part!r} is not a whole number of at least 1; e.g. --k 1,5,20",
                                         param_hint="--k")
            out.append(int(part))
    return out


@eval_group.command("beir", short_help="nDCG@10, recall@10/100, MRR@10 on a BEIR data set (e.g. SciFact).")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--units", type=click.Choice(["chunks", "whole"]), default="chunks", show_default=True,
              help="chunks: the product's chunking, a document scores as its best chunk; "
                   "whole: one vector per document, cut at 256 word pieces (MTEB's setup).")
@click.option("--k", "ks", multiple=True, metavar="K[,K...]",
              help="More cutoffs to report (10 and 100 always are), e.g. --k 1,5.")
@_common_options
def beir_command(directory: Path, units: str, ks: tuple[str, ...], as_json: bool, chunk_tokens: int | None,
                 chunk_overlap: int | None, retrieval_mode: str | None, no_progress: bool) -> None:
    """Score retrieval on a BEIR data set DIRECTORY (corpus.jsonl, queries.jsonl, qrels/test.tsv).

    Reports nDCG@10, recall@10, recall@100 and MRR@10 over the test queries, e.g.
    `rag eval beir ../shared/data/beir/scifact --units whole` reproduces MTEB's
    all-MiniLM-L6-v2 SciFact nDCG@10 of 0.6451.
    """
    from rag.eval.beir import METRIC_KEYS, evaluate_beir

    cutoffs = _cutoffs(ks)
    settings = _settings(chunk_tokens, chunk_overlap, retrieval_mode)
    result = evaluate_beir(directory, settings=settings, units=units,  # type: ignore[arg-type]
                           progress=not no_progress, ks=cutoffs)
    extra = [f"{m}@{k}" for k in result["k"] for m in ("ndcg", "recall", "mrr")]
    _report(result, as_json=as_json, title=f"BEIR {result['dataset']} ({units})",
            metrics=dict.fromkeys([*METRIC_KEYS, *extra]))


@eval_group.command("squad", short_help="hit@1/5/10 and MRR of answer-bearing chunks on SQuAD v1.1.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--limit-articles", type=click.IntRange(min=1), default=None,
              help="Only the first N articles and their questions (a quick check).")
@_common_options
def squad_command(file: Path, limit_articles: int | None, as_json: bool, chunk_tokens: int | None,
                  chunk_overlap: int | None, retrieval_mode: str | None, no_progress: bool) -> None:
    """Score retrieval on a SQuAD v1.1 FILE: is a gold answer in a top-k chunk of the right article?

    Reports hit@1, hit@5, hit@10 and MRR (of the first hit within the top 10) over every question.
    """
    from rag.eval.squad import METRIC_KEYS, evaluate_squad

    result = evaluate_squad(file, settings=_settings(chunk_tokens, chunk_overlap, retrieval_mode),
                            progress=not no_progress, limit_articles=limit_articles)
    _report(result, as_json=as_json, title=f"SQuAD {result['dataset']}", metrics=METRIC_KEYS)
