"""Split documents into passages that retrieval returns on their own.

Markdown splits at headings (each passage is titled by its heading path); plain text at blank
lines. Long sections are cut at paragraph boundaries so that a passage stays near
``max_words``, the size a small model can read and the embedding model does not truncate.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from knowledge.records import Document, Passage

MAX_WORDS = 180
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def split_document(doc: Document, max_words: int = MAX_WORDS) -> list[Passage]:
    sections = _markdown_sections(doc.text) if doc.format in ("md", "html") else [("", doc.text)]
    passages: list[Passage] = []
    for heading, body in sections:
        for chunk in _pack_paragraphs(body, max_words):
            title = f"{doc.title} — {heading}" if heading and heading != doc.title else doc.title
            passages.append(
                Passage(
                    id=f"{doc.id}#{len(passages) + 1}",
                    document_id=doc.id,
                    title=title,
                    text=chunk,
                )
            )
    return passages


def _markdown_sections(text: str) -> list[tuple[str, str]]:
    """(heading path, body) pairs; text before the first heading has an empty heading."""
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_code = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append((" › ".join(h for _, h in path[1:] or path), content))
        body.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, match.group(2))]
        else:
            body.append(line)
    flush()
    return sections


def _pack_paragraphs(text: str, max_words: int) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks: list[str] = []
    current: list[str] = []
    words = 0
    for para in paragraphs:
        n = len(para.split())
        if current and words + n > max_words:
            chunks.append("\n\n".join(current))
            current, words = [], 0
        if n > max_words:
            chunks.extend(_split_long(para, max_words))
            continue
        current.append(para)
        words += n
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _split_long(paragraph: str, max_words: int) -> list[str]:
    sentences = re.split(r"(?<=[.!?])\s+", paragraph)
    out: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        if current and len(" ".join(current + [sentence]).split()) > max_words:
            out.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        out.append(" ".join(current))
    return out


class _HTMLToMarkdown(HTMLParser):
    """Keeps headings as Markdown headings and paragraphs as blank-line-separated text."""

    _BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "ul", "ol", "table"}
    _SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag != "li" else "\n\n- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_markdown(html: str) -> tuple[str, str]:
    """(title, markdown text) of an HTML page; scripts and styles are dropped."""
    parser = _HTMLToMarkdown()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = "\n".join(line.strip() for line in text.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return parser.title.strip(), text


def markdown_title(text: str) -> str | None:
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match and len(match.group(1)) == 1:
            return match.group(2).strip()
    return None
