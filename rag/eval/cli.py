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

from rag.cli_group import RagGroup
from rag.settings import FUSIONS, RETRIEVAL_MODES


@click.group(cls=RagGroup)
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
        click.option("--retrieval-mode", type=click.Choice(RETRIEVAL_MODES), default=None,
                     help="Retrieval mode (default: setting retrieval_mode)."),
        click.option("--fusion", type=click.Choice(FUSIONS), default=None,
                     help="How hybrid fuses dense and BM25 (default: setting fusion)."),
        click.option("--keyword-weight", type=float, default=None,
                     help="BM25 share of the hybrid fusion (default: setting keyword_weight)."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bars."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(**options: Any):
    """Settings from the environment with the command's --chunk-*/--retrieval-mode/--fusion/... options."""
    from rag.eval.common import resolve_settings

    return resolve_settings(None, **options)


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
def beir_command(directory: Path, units: str, ks: tuple[str, ...], as_json: bool, no_progress: bool,
                 **setting_options: Any) -> None:
    """Score retrieval on a BEIR data set DIRECTORY (corpus.jsonl, queries.jsonl, qrels/test.tsv).

    Reports nDCG@10, recall@10, recall@100 and MRR@10 over the test queries, e.g.
    `rag eval beir ../shared/data/beir/scifact --units whole` reproduces MTEB's
    all-MiniLM-L6-v2 SciFact nDCG@10 of 0.6451.
    """
    from rag.eval.beir import METRIC_KEYS, evaluate_beir

    cutoffs = _cutoffs(ks)
    settings = _settings(**setting_options)
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
def squad_command(file: Path, limit_articles: int | None, as_json: bool, no_progress: bool,
                  **setting_options: Any) -> None:
    """Score retrieval on a SQuAD v1.1 FILE: is a gold answer in a top-k chunk of the right article?

    Reports hit@1, hit@5, hit@10 and MRR (of the first hit within the top 10) over every question.
    """
    from rag.eval.squad import METRIC_KEYS, evaluate_squad

    result = evaluate_squad(file, settings=_settings(**setting_options),
                            progress=not no_progress, limit_articles=limit_articles)
    _report(result, as_json=as_json, title=f"SQuAD {result['dataset']}", metrics=METRIC_KEYS)


@eval_group.command("answers", short_help="How often the extractive answer contains a SQuAD gold answer.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--limit-articles", type=click.IntRange(min=1), default=None,
              help="Only the first N articles and their questions (a quick check).")
@click.option("--max-questions", type=click.IntRange(min=1), default=None,
              help="Ask only this many questions, spread over the file (every article stays indexed).")
@_common_options
def answers_command(file: Path, limit_articles: int | None, max_questions: int | None, as_json: bool,
                    no_progress: bool, **setting_options: Any) -> None:
    """Ask the questions of a SQuAD FILE and score the answers (RAG_LLM's generator; the extract by default).

    Reports how often the answer contains a gold answer, SQuAD token F1 and exact match,
    the median answer length in words, and the share of answer sentences from a chunk that
    holds a gold answer.
    """
    from rag.eval.answers import evaluate_extract

    result = evaluate_extract(file, settings=_settings(**setting_options), progress=not no_progress,
                              limit_articles=limit_articles, max_questions=max_questions)
    _report(result, as_json=as_json, title=f"Answers ({result['generator']}), {result['dataset']}",
            metrics=["extract_contains_answer", "answer_contains_answer", "refused", "retrieved_contains_answer",
                     "f1", "em", "answer_words", "sentence_precision"])


@eval_group.command("refusals", short_help="Refusal rates on unanswerable vs answerable SQuAD questions.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--limit-articles", type=click.IntRange(min=2), default=None,
              help="Only the first N articles and their questions.")
@click.option("--max-questions", type=click.IntRange(min=1), default=None,
              help="Ask only this many questions, spread over the file.")
@click.option("--distractors", "distractors", multiple=True, type=click.Path(path_type=Path),
              help="Also index this text, which answers none of the questions: a directory of wikitext "
                   "*.txt files or a BEIR corpus.jsonl (repeatable).")
@click.option("--distractor-limit", type=click.IntRange(min=1), default=None,
              help="Only the first N records of each BEIR corpus among --distractors.")
@click.option("--store", type=click.Path(path_type=Path), default=None,
              help="Keep the store in this directory and reuse it (only new text is embedded; retrieval is "
                   "restricted to this run's sources).")
@click.option("--dump", type=click.Path(path_type=Path), default=None,
              help="Write each question's evidence (answerable and unanswerable) to this JSONL file.")
@_common_options
def refusals_command(file: Path, limit_articles: int | None, max_questions: int | None,
                     distractors: tuple[Path, ...], distractor_limit: int | None, store: Path | None,
                     dump: Path | None, as_json: bool, no_progress: bool, **setting_options: Any) -> None:
    """Ask each question of a SQuAD FILE with its article left out (unanswerable) and in (answerable).

    Reports the share refused in each case under the product's rule (RAG_REFUSE_BELOW), and
    the best threshold for at most 5% refused answerable questions (fitted on even articles,
    scored on odd, and the other way round). --distractors grows the store with other text,
    e.g. --distractors ../shared/data/wiki/wikitext --distractors ../shared/data/beir/scifact.
    """
    from rag.eval.refusals import evaluate_refusals

    result = evaluate_refusals(file, settings=_settings(**setting_options), progress=not no_progress,
                               limit_articles=limit_articles, max_questions=max_questions,
                               distractors=distractors, distractor_limit=distractor_limit, store=store, dump=dump)
    title = f"Refusals, {result['dataset']}" + (f" + {result['distractors']}" if result["distractors"] else "")
    _report(result, as_json=as_json, title=title,
            metrics=["refused_unanswerable", "refused_answerable", "refused_answerable_retrievable",
                     "crossfit_refused_unanswerable", "crossfit_refused_answerable"])


@eval_group.command("support", short_help="How the citation support check scores right and wrong citations.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--max-questions", type=click.IntRange(min=1), default=1500, show_default=True,
              help="Use this many questions, spread over the file.")
@_common_options
def support_command(file: Path, max_questions: int, as_json: bool, no_progress: bool,
                    **setting_options: Any) -> None:
    """Score answer-like sentences of a SQuAD FILE against the right chunk and a wrong one.

    Reports the share flagged unsupported at RAG_SUPPORT_BELOW for right citations
    (should be small) and for citations of another article's nearest chunk (should be large).
    """
    from rag.eval.answers import evaluate_support

    result = evaluate_support(file, settings=_settings(**setting_options), progress=not no_progress,
                              max_questions=max_questions)
    _report(result, as_json=as_json, title=f"Citation support, {result['dataset']}",
            metrics=["flagged_right", "flagged_wrong", "flagged_same_article_no_answer"])


@eval_group.command("followups", short_help="Turn-2 hit@5 of two-turn conversations over a SQuAD corpus.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--corpus", type=click.Path(path_type=Path), required=True, help="The SQuAD file to index.")
@_common_options
def followups_command(file: Path, corpus: Path, as_json: bool, no_progress: bool,
                      **setting_options: Any) -> None:
    """Score follow-up retrieval on conversations FILE (e.g. data/eval/followups-squad-half-a.json).

    Reports turn-2 hit@5 of the product's method (RAG_LLM decides: fusion without a
    model, a condensed question with one), the question alone, and concatenation.
    """
    from rag.eval.answers import evaluate_followups

    result = evaluate_followups(file, corpus, settings=_settings(**setting_options),
                                progress=not no_progress)
    _report(result, as_json=as_json, title=f"Follow-ups, {result['dataset']}",
            metrics=["hit@5", "hit@5_question_alone", "hit@5_concatenated", "topic_switch_hit@5",
                     "topic_switch_hit@5_question_alone"])
