"""Load benchmark: concurrent chat sessions against the real server, one upload in the middle.

Run (from the repo root):

    .venv/bin/python -m bench.load            # 16 sessions x 5 turns over 16 SQuAD articles
    .venv/bin/python -m bench.load --quick    # smoke run: 4 sessions x 3 turns, 4 articles

The server is `rag serve` (``rag.http.app.create_server``: FastAPI + Gradio) in its own process on
a temporary store, so client threads do not share its interpreter. The store holds SQuAD
half-a articles, each ingested as one text source through ``POST /api/ingest/text``.

Sessions start together and ask back to back (a closed loop, no think time). Session i asks
about article i: the article's two-turn follow-up conversation from
``data/eval/followups-squad-half-a.json`` ("Which teams played in Super Bowl 50?" then "Who
headlined its halftime show?"), then more of its SQuAD questions, always sending its own
earlier turns as history. Sessions use the routes a client would, in turn:

    api_ask         POST /api/ask                          {"question", "history"}
    openai          POST /v1/chat/completions              the conversation as messages
    openai_stream   POST /v1/chat/completions, stream      latency = until [DONE]; also time to first piece
    gradio_ask      gradio_client Client.predict(..., api_name="/ask")   (the Gradio queue)

When half the questions have been answered, one PDF (data/demo/gettysburg-address.pdf) is
uploaded through ``POST /api/ingest/file``; afterwards it must be searchable.

Checks (the run exits 1 when one fails): no request fails, and no cross-talk: after the load,
every request is replayed alone through ``/api/ask`` with the exact history that session
sent, and the answer it got under load must be the same (text, cited chunk ids, retrieval
query, which names the session's own previous turn for a follow-up). A request whose replay
retrieves the uploaded PDF may legitimately differ (it ran before the upload); it is counted as
upload-dependent instead. This strict comparison needs a deterministic generator, the
default extractive one; with an LLM set in RAG_LLM only the cited chunks are checked to be
among the answer's own sources and the query to name only the session's own turns.

Prints p50/p95 latency per request type and the questions answered per second, and writes
JSON to bench/results/. Latencies include queueing: with N sessions and the default
``--concurrency 4`` Gradio questions wait their turn, and all requests share the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    SQUAD_HALF_A,
    load_squad,
    note,
    now,
    print_table,
    setup_offline,
    summarize_ms,
    write_json,
)

FOLLOWUPS = ROOT / "data" / "eval" / "followups-squad-half-a.json"
UPLOAD = ROOT / "data" / "demo" / "gettysburg-address.pdf"
UPLOAD_QUERY = "Four score and seven years ago our fathers brought forth a new nation"
ROUTES = ("api_ask", "openai", "openai_stream", "gradio_ask")


@dataclass
class Turn:
    """One question a session asked, what it sent, what came back, and how long it took."""

    session: int
    route: str
    question: str
    history: list[tuple[str, str]]
    seconds: float = 0.0
    first_piece_s: float | None = None
    text: str = ""
    citation_ids: list[str] = field(default_factory=list)
    source_ids: list[str] = field(default_factory=list)
    query: str = ""
    error: str | None = None
    ended_at: float = 0.0


# -- the server --------------------------------------------------------------------------------

class Server:
    """`rag serve --port 0` on ``data_dir`` in its own process."""

    def __init__(self, data_dir: Path, concurrency: int) -> None:
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "ANONYMIZED_TELEMETRY": "False"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve", "--port", "0",
             "--concurrency", str(concurrency)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 600
        while not self.url and time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stderr.readline()
            self.log.append(line)
            if m := re.search(r"Serving on (http://\S+/)", line):
                self.url = m.group(1)
        if not self.url:
            self.stop()
            raise SystemExit("rag serve did not start:\n" + "".join(self.log[-20:]))
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def headers() -> dict[str, str]:
    """The credentials the server wants, from this environment (RAG_API_KEY / RAG_AUTH)."""
    from rag.http.auth import client_headers
    from rag.settings import Settings

    # X-Requested-With: the server refuses multipart writes (the upload) without it.
    return {**client_headers(Settings.from_env()), "X-Requested-With": "bench"}


# -- the workload ------------------------------------------------------------------------------

def question_series(n_sessions: int, turns: int, max_articles: int) -> tuple[list, list[list[str]]]:
    """The articles to index and, per session, its distinct questions (a follow-up conversation first)."""
    articles = load_squad(SQUAD_HALF_A, max_articles=max_articles)
    followups = json.loads(FOLLOWUPS.read_text(encoding="utf-8")) if FOLLOWUPS.is_file() else []
    series: list[list[str]] = []
    rounds = -(-n_sessions // len(articles))  # sessions per article, rounded up
    for i in range(n_sessions):
        article = articles[i % len(articles)]
        round_ = i // len(articles)
        convs = [c for c in followups if c["article"] == article.title]
        conv = convs[round_ % len(convs)] if convs else None
        picked = ([*conv["history"], conv["question"]] if conv else [])[:turns]
        # Sessions that share an article draw from disjoint slices of its questions.
        pool = [q.text for q in article.questions if q.text not in picked][round_::rounds]
        need = turns - len(picked)
        if need > 0 and pool:
            picked += [pool[int(k * len(pool) / need)] for k in range(min(need, len(pool)))]
        series.append(picked)
    return articles, series


def ingest_articles(url: str, articles: list) -> dict[str, Any]:
    """Index each article as one text source through the API; returns counts and seconds."""
    import httpx

    started = now()
    chunks = 0
    with httpx.Client(base_url=url, headers=headers(), timeout=httpx.Timeout(600, connect=10)) as http:
        for a in articles:
            r = http.post("api/ingest/text", json={"name": a.title, "text": "\n\n".join(a.paragraphs)})
            r.raise_for_status()
            report = r.json()
            if report["skipped"]:
                raise SystemExit(f"could not index {a.title}: {report['skipped']}")
            chunks += sum(report["added"].values()) + sum(report["replaced"].values()) + sum(report["unchanged"].values())
    return {"articles": len(articles), "chunks": chunks, "seconds": now() - started}


def ask_once(route: str, http, gradio, question: str, history: list[tuple[str, str]], turn: Turn) -> None:
    """Ask one question over ``route`` and record the answer in ``turn``."""
    if route == "api_ask":
        r = http.post("api/ask", json={"question": question, "history": [list(p) for p in history]})
        _raise_for(r)
        data = r.json()
        turn.text, turn.query = data["answer"], data["query"]
        turn.citation_ids = [c["id"] for c in data["citations"]]
        turn.source_ids = [h["id"] for h in data["sources"]]
    elif route in ("openai", "openai_stream"):
        messages = []
        for q, a in history:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": question})
        body = {"model": "rag", "messages": messages, "stream": route == "openai_stream"}
        if route == "openai":
            r = http.post("v1/chat/completions", json=body)
            _raise_for(r)
            data = r.json()
            turn.text = data["choices"][0]["message"]["content"]
            extras = data
        else:
            started = now()
            pieces: list[str] = []
            extras = {}
            with http.stream("POST", "v1/chat/completions", json=body) as r:
                _raise_for(r)
                for line in r.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    content = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                    if content:
                        if turn.first_piece_s is None:
                            turn.first_piece_s = now() - started
                        pieces.append(content)
                    if "citations" in chunk:
                        extras = chunk
            turn.text = "".join(pieces)
        turn.query = extras["rag"]["query"]
        turn.citation_ids = [c["id"] for c in extras["citations"]]
        turn.source_ids = [h["id"] for h in extras["sources"]]
    else:
        data = gradio.predict(question, [list(p) for p in history], None, None, api_name="/ask")
        turn.text, turn.query = data["answer"], data["query"]
        turn.citation_ids = [c["id"] for c in data["citations"]]
        turn.source_ids = [h["id"] for h in data["sources"]]


def _raise_for(response) -> None:
    if response.status_code != 200:
        response.read()
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")


def run_load(url: str, series: list[list[str]], upload_after: int) -> tuple[list[Turn], dict[str, Any], float]:
    """Run every session at once (one thread each) and the upload when ``upload_after`` answers are in."""
    import httpx
    from gradio_client import Client

    auth_headers = headers()
    turns: list[Turn] = []
    lock = threading.Lock()
    answered = threading.Condition(lock)
    barrier = threading.Barrier(len(series) + 1)
    upload: dict[str, Any] = {}

    def session(i: int) -> None:
        route = ROUTES[i % len(ROUTES)]
        history: list[tuple[str, str]] = []
        gradio = None
        connect_error = None
        with httpx.Client(base_url=url, headers=auth_headers, timeout=httpx.Timeout(900, connect=10)) as http:
            try:
                if route == "gradio_ask":
                    from rag.settings import Settings

                    gradio = Client(url, verbose=False, download_files=False, auth=Settings.from_env().login)
            except Exception as exc:  # reported as this session's first turn's error
                connect_error = f"the Gradio client did not connect: {type(exc).__name__}: {exc}"
            finally:
                barrier.wait()
            try:
                for question in series[i]:
                    turn = Turn(i, route, question, list(history))
                    started = now()
                    try:
                        if connect_error:
                            raise RuntimeError(connect_error)
                        ask_once(route, http, gradio, question, history, turn)
                    except Exception as exc:  # every failure is counted and reported
                        turn.error = f"{type(exc).__name__}: {exc}"[:400]
                    turn.seconds = now() - started
                    turn.ended_at = now()
                    with answered:
                        turns.append(turn)
                        answered.notify_all()
                    if turn.error:
                        break  # the rest of this conversation would build on a missing answer
                    history.append((question, turn.text))
            finally:
                if gradio is not None:
                    gradio.close()

    sessions_over = threading.Event()

    def upload_midway() -> None:
        with answered:
            answered.wait_for(lambda: len(turns) >= upload_after or sessions_over.is_set())
        upload["at_answer"] = len(turns)
        started = now()
        try:
            with httpx.Client(base_url=url, headers=auth_headers, timeout=httpx.Timeout(900, connect=10)) as http, \
                    UPLOAD.open("rb") as fh:
                r = http.post("api/ingest/file", files={"file": (UPLOAD.name, fh, "application/pdf")})
                _raise_for(r)
                upload["report"] = r.json()
                if upload["report"]["skipped"]:
                    upload["error"] = f"upload skipped: {upload['report']['skipped']}"
        except Exception as exc:
            upload["error"] = f"{type(exc).__name__}: {exc}"[:400]
        upload["seconds"] = now() - started

    threads = [threading.Thread(target=session, args=(i,), name=f"session-{i}") for i in range(len(series))]
    uploader = threading.Thread(target=upload_midway, name="upload")
    for t in threads:
        t.start()
    uploader.start()
    barrier.wait()
    started = now()
    for t in threads:
        t.join()
    wall = now() - started
    with answered:
        sessions_over.set()
        answered.notify_all()
    uploader.join()
    return turns, upload, wall


def check_cross_talk(url: str, turns: list[Turn], deterministic: bool) -> dict[str, Any]:
    """Replay each answered request alone through /api/ask and compare; see the module docstring."""
    import httpx

    result = {"checked": 0, "same": 0, "upload_dependent": 0, "different": 0, "examples": []}
    with httpx.Client(base_url=url, headers=headers(), timeout=httpx.Timeout(900, connect=10)) as http:
        for turn in turns:
            if turn.error:
                continue
            result["checked"] += 1
            own_questions = [q for q, _ in turn.history]
            others = [t.question for t in turns if t.session != turn.session and t.question not in own_questions
                      and t.question != turn.question]
            leaked = [q for q in others if q in turn.query]
            if deterministic:
                r = http.post("api/ask", json={"question": turn.question, "history": [list(p) for p in turn.history]})
                _raise_for(r)
                ref = r.json()
                same = (ref["answer"] == turn.text and [c["id"] for c in ref["citations"]] == turn.citation_ids
                        and ref["query"] == turn.query)
                if same and not leaked:
                    result["same"] += 1
                    continue
                if any(h["source"] == UPLOAD.name for h in ref["sources"]):
                    result["upload_dependent"] += 1
                    continue
                problem = {"session": turn.session, "route": turn.route, "question": turn.question,
                           "got_query": turn.query, "replay_query": ref["query"], "got": turn.text[:200],
                           "replay": ref["answer"][:200]}
            else:
                if not leaked and set(turn.citation_ids) <= set(turn.source_ids):
                    result["same"] += 1
                    continue
                problem = {"session": turn.session, "route": turn.route, "question": turn.question,
                           "got_query": turn.query}
            result["different"] += 1
            if leaked:
                problem["other_sessions_questions_in_query"] = leaked
            if len(result["examples"]) < 5:
                result["examples"].append(problem)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 sessions x 3 turns over 4 articles")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--articles", type=int, default=None, help="articles to index (default: one per session)")
    parser.add_argument("--concurrency", type=int, default=4, help="`rag serve --concurrency` (Gradio questions at once)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.turns, args.articles = 4, 3, args.articles or 4
    n_articles = args.articles or args.sessions
    setup_offline()

    from rag.settings import Settings

    deterministic = Settings.from_env().llm.strip().lower() == "extractive"
    articles, series = question_series(args.sessions, args.turns, n_articles)
    total = sum(len(s) for s in series)
    workdir = Path(tempfile.mkdtemp(prefix="rag-load-"))
    server = None
    try:
        note(f"starting rag serve on {workdir}")
        t0 = now()
        server = Server(workdir / "data", args.concurrency)
        startup_s = now() - t0
        note(f"server up at {server.url} in {startup_s:.1f} s; indexing {len(articles)} articles")
        indexed = ingest_articles(server.url, articles)
        note(f"indexed {indexed['chunks']} chunks in {indexed['seconds']:.1f} s; "
             f"{args.sessions} sessions x {args.turns} turns ({total} questions), upload after {total // 2}")
        turns, upload, wall = run_load(server.url, series, upload_after=total // 2)
        note(f"load done in {wall:.1f} s; replaying {len(turns)} requests one by one")

        import httpx

        with httpx.Client(base_url=server.url, headers=headers(), timeout=120) as http:
            r = http.post("api/search", json={"query": UPLOAD_QUERY, "k": 1})
            upload_found = r.status_code == 200 and r.json()["hits"][0]["source"] == UPLOAD.name
        cross = check_cross_talk(server.url, turns, deterministic)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    errors = [{"session": t.session, "route": t.route, "question": t.question, "error": t.error}
              for t in turns if t.error]
    if upload.get("error"):
        errors.append({"route": "upload", "error": upload["error"]})
    if not upload_found:
        errors.append({"route": "upload", "error": "the uploaded PDF is not the top hit for its own text"})
    unanswered = total - len(turns)
    rows, per_route = [], {}
    for route in ROUTES:
        done = [t for t in turns if t.route == route and not t.error]
        if not done:
            continue
        stats = summarize_ms([t.seconds for t in done])
        firsts = [t.first_piece_s for t in done if t.first_piece_s is not None]
        if firsts:
            stats["first_piece"] = summarize_ms(firsts)
        stats["max_ms"] = max(t.seconds for t in done) * 1000
        per_route[route] = stats
        rows.append([route, stats["n"], stats["p50_ms"], stats["p95_ms"], stats["max_ms"]])
    everything = summarize_ms([t.seconds for t in turns if not t.error])
    rows.append(["all questions", everything["n"], everything["p50_ms"], everything["p95_ms"],
                 max((t.seconds for t in turns if not t.error), default=0.0) * 1000])
    if "seconds" in upload:
        rows.append(["upload (PDF, 3 pages)", 1, upload["seconds"] * 1000, upload["seconds"] * 1000,
                     upload["seconds"] * 1000])
    answered_ok = len(turns) - sum(1 for t in turns if t.error)
    throughput = answered_ok / wall if wall else 0.0
    payload = {
        "sessions": args.sessions, "turns": args.turns, "questions": total, "answered": answered_ok,
        "unanswered": unanswered, "articles": len(articles), "chunks": indexed["chunks"],
        "index_seconds": indexed["seconds"], "server_startup_seconds": startup_s, "load_seconds": wall,
        "questions_per_second": throughput, "latency": per_route, "latency_all": everything,
        "upload": {k: v for k, v in upload.items() if k != "report"} | {"found_after": upload_found},
        "errors": errors, "cross_talk": cross, "generator_deterministic": deterministic,
        "concurrency": args.concurrency,
        "sessions_per_route": {r: sum(1 for i in range(args.sessions) if ROUTES[i % len(ROUTES)] == r) for r in ROUTES},
        "server_log_tail": "".join(server.log[-20:]) if server else "",
    }
    path = write_json("load", payload)
    print_table(["request", "n", "p50 ms", "p95 ms", "max ms"], rows,
                title=f"Load: {args.sessions} sessions x {args.turns} turns, {len(articles)} articles "
                      f"({indexed['chunks']} chunks), one upload midway; {os.cpu_count()} CPUs")
    print(f"throughput: {throughput:.2f} questions/s over {wall:.1f} s; errors: {len(errors)}; "
          f"unanswered: {unanswered}; cross-talk: {cross['same']} of {cross['checked']} identical when replayed "
          f"alone, {cross['upload_dependent']} upload-dependent, {cross['different']} different")
    print(f"results: {path}")
    for e in errors[:5]:
        print(f"error: {e}", file=sys.stderr)
    for ex in cross["examples"]:
        print(f"different: {ex}", file=sys.stderr)
    return 1 if errors or unanswered or cross["different"] else 0


if __name__ == "__main__":
    sys.exit(main())
