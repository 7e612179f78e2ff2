"""Distractor documents for evaluations: real text that answers none of the questions asked.

A refusal must hold when the store grows and its content changes, so ``rag eval refusals
--distractors PATH`` indexes more documents beside the SQuAD articles. A PATH is one of:

* a directory of raw wikitext files (``*.txt``, e.g. ``../shared/data/wiki/wikitext``): each
  file is one source ``wikitext:<name>``, its wikitext turned into plain text by
  :func:`wikitext_to_plain` and split into one document per ``== section ==``;
* a BEIR corpus (``corpus.jsonl`` with ``_id``, ``title``, ``text``, e.g.
  ``../shared/data/beir/scifact/corpus.jsonl``), or a directory holding one: each record is a
  document, grouped into sources of :data:`BLOCK` records (``beir:scifact/0``,
  ``beir:scifact/1000``, ...) so that "the first 1,000" is the same set of sources in every run.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rag.eval.common import EvalDataError
from rag.types import Document

BLOCK = 1000
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$", re.M)


@dataclass(frozen=True)
class Distractors:
    """Documents grouped by source, and a short label of where they came from."""

    documents: list[Document]
    label: str

    @property
    def sources(self) -> list[str]:
        """The distinct source names, in order."""
        return list(dict.fromkeys(d.source for d in self.documents))


def wikitext_to_plain(text: str) -> str:
    """Crudely turn wikitext into MediaWiki's ``explaintext`` form, keeping ``== headings ==``.

    References, comments, templates, tables, files and categories go; links keep their label;
    bold/italic quotes and HTML tags go.

    Args:
        text: raw wikitext (XML-escaped text is unescaped first).

    Returns:
        Plain text, one paragraph per line, headings on their own lines.
    """
    if "&lt;" in text:  # e.g. anarchism.txt is stored XML-escaped
        text = html.unescape(text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<ref[^>]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S | re.I)
    text = re.sub(r"<(gallery|timeline|imagemap)[^>]*>.*?</\1>", "", text, flags=re.S | re.I)
    previous = None
    while previous != text:  # templates and tables nest inside each other
        previous = text
        text = re.sub(r"\{\{[^{}]*\}\}", "", text)
        text = re.sub(r"\{\|(?:(?!\{\|).)*?\n\|\}", "", text, flags=re.S)
    previous = None
    while previous != text:  # innermost links first, so captions' links resolve before their File: link
        previous = text
        text = re.sub(r"\[\[([^\[\]]*)\]\]", _link_text, text)
    text = re.sub(r"\[(?:https?:)?//[^\s\]]+ ([^\]]*)\]", r"\1", text)
    text = re.sub(r"\[(?:https?:)?//[^\s\]]+\]", "", text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.I)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    text = re.sub(r"__[A-Z]+__", "", text)
    text = text.replace("{{", "").replace("}}", "")
    out: list[str] = []
    for raw in text.splitlines():
        line = re.sub(r"^[*#:;]+\s*", "", raw.strip()).strip()
        heading = re.fullmatch(r"(={2,6})\s*(.*?)\s*\1", line)
        if heading:
            out.append(f"\n\n{heading.group(1)} {heading.group(2)} {heading.group(1)}")
        elif line and not line.startswith(("|", "!")):
            out.append(line)
    return "\n".join(out).strip()


def _link_text(match: re.Match[str]) -> str:
    target, _, label = match.group(1).partition("|")
    namespace = target.split(":", 1)[0].strip().lower() if ":" in target else ""
    if namespace in {"file", "image", "datei", "bild", "category", "kategorie"} or re.fullmatch(
        r"[a-z]{2,3}(-[a-z]+)?", namespace
    ):
        return ""
    return (label.rsplit("|", 1)[-1] if label else target).strip()


def wikitext_documents(path: Path) -> list[Document]:
    """One document per section of a wikitext file (source ``wikitext:<file name>``)."""
    name = path.stem
    plain = wikitext_to_plain(path.read_text(encoding="utf-8"))
    docs: list[Document] = []
    section, start = None, 0
    for match in [*_HEADING.finditer(plain), None]:
        body = plain[start : match.start() if match else len(plain)].strip()
        if body:
            docs.append(Document(source=f"wikitext:{name}", text=body, kind="text", title=name, section=section))
        if match:
            section, start = match.group(2), match.end()
    return docs


def beir_documents(path: Path, limit: int | None = None) -> list[Document]:
    """The first ``limit`` records of a BEIR ``corpus.jsonl``, in sources of :data:`BLOCK` records."""
    name = path.parent.name or path.stem
    docs: list[Document] = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            try:
                rec = json.loads(line)
                text, title = str(rec.get("text") or "").strip(), str(rec.get("title") or "").strip()
            except (json.JSONDecodeError, AttributeError):
                raise EvalDataError(f"{path} line {i + 1} is not a JSON object with title and text; "
                                    "give a BEIR corpus.jsonl") from None
            if text:
                docs.append(Document(source=f"beir:{name}/{i // BLOCK * BLOCK}", text=text, kind="text",
                                     title=title or name))
    return docs


def load_distractors(paths: Sequence[str | Path], *, limit: int | None = None) -> Distractors:
    """The documents of every distractor PATH (see the module docstring).

    Args:
        paths: wikitext directories, BEIR ``corpus.jsonl`` files or directories holding one.
        limit: at most this many records of each BEIR corpus (all when None).

    Returns:
        The documents and a label such as ``wikitext(12) + scifact(1000)``.

    Raises:
        EvalDataError: a path that does not exist or holds neither kind of text.
    """
    docs: list[Document] = []
    labels: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and (path / "corpus.jsonl").is_file():
            path = path / "corpus.jsonl"
        if path.is_file() and path.suffix == ".jsonl":
            found = beir_documents(path, limit)
            labels.append(f"{path.parent.name}({len(found)})")
        elif path.is_dir() and any(path.glob("*.txt")):
            files = sorted(path.glob("*.txt"))
            found = [d for f in files for d in wikitext_documents(f)]
            labels.append(f"{path.name}({len(files)})")
        else:
            raise EvalDataError(f"The distractor path {str(path)!r} is neither a directory of wikitext *.txt files "
                                "nor a BEIR corpus.jsonl; e.g. --distractors ../shared/data/wiki/wikitext")
        if not found:
            raise EvalDataError(f"The distractor path {str(path)!r} holds no text")
        docs += found
    return Distractors(docs, " + ".join(labels))
