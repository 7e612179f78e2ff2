"""Regenerate the demo PDFs in data/demo (run by hand; the PDFs are committed)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pdfgen import make_pdf  # noqa: E402

GETTYSBURG = [
    "The Gettysburg Address\nAbraham Lincoln, November 19, 1863, at the dedication of the Soldiers' National "
    "Cemetery in Gettysburg, Pennsylvania. Public domain.",
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in "
    "Liberty, and dedicated to the proposition that all men are created equal.\n"
    "Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived and so "
    "dedicated, can long endure. We are met on a great battle-field of that war. We have come to dedicate a "
    "portion of that field, as a final resting place for those who here gave their lives that that nation might "
    "live. It is altogether fitting and proper that we should do this.",
    "But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not hallow -- this ground. "
    "The brave men, living and dead, who struggled here, have consecrated it, far above our poor power to add or "
    "detract. The world will little note, nor long remember what we say here, but it can never forget what they "
    "did here. It is for us the living, rather, to be dedicated here to the unfinished work which they who fought "
    "here have thus far so nobly advanced. It is rather for us to be here dedicated to the great task remaining "
    "before us -- that from these honored dead we take increased devotion to that cause for which they gave the "
    "last full measure of devotion -- that we here highly resolve that these dead shall not have died in vain -- "
    "that this nation, under God, shall have a new birth of freedom -- and that government of the people, by the "
    "people, for the people, shall not perish from the earth.",
]

GUIDE = [
    "Using rag: a short guide\nrag answers questions from your own documents. It reads PDF files and "
    "Wikipedia pages, cuts them into chunks of at most 256 word pieces, embeds each chunk with the "
    "all-MiniLM-L6-v2 model, and keeps the vectors in a Chroma store in the data folder.",
    "Adding documents\nRun rag ingest with one or more PDF files or folders. An encrypted PDF needs its "
    "password: pass it with the --password option. A scanned PDF without a text layer is refused; run OCR on it "
    "first. Wikipedia pages are added by exact title with rag ingest --wikipedia followed by the title. "
    "Ingesting the same file twice changes nothing, and a changed file replaces its old chunks.",
    "Asking questions\nrag search prints the chunks most similar to a question, with their cosine similarity. "
    "rag ask answers in sentences and cites its sources as numbers in brackets, and every source links to the "
    "Wikipedia section or the PDF page it came from. Without a language model configured, answers are extracts: "
    "the best sentences from the sources, quoted as they are. rag sources lists what is indexed and rag delete "
    "removes a source with all its chunks.",
]

if __name__ == "__main__":
    out = ROOT / "data" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    make_pdf(GETTYSBURG, out / "gettysburg-address.pdf", title="The Gettysburg Address")
    make_pdf(GUIDE, out / "rag-guide.pdf", title="Using rag")
    print(f"wrote demo PDFs to {out}")
