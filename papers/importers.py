"""Paper import from the three feed formats Paperboy understands.

Parsing collects every bad record before anything touches the database, and
the import itself is one transaction: a source is imported whole or not at all.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as ElementTree
from defusedxml import DefusedXmlException
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import fetch
from core.text import ARXIV_CATEGORY, clean_line, normalise_key
from papers.matching import embed_and_rescore, score_papers
from papers.models import ImportRun, Paper, PaperEmbedding

log = logging.getLogger(__name__)

FORMATS = ("hf-page", "hf-json", "arxiv-atom")
MAX_TITLE = 500
MAX_ABSTRACT = 20_000
MAX_AUTHORS = 500
MAX_AUTHOR = 200
MAX_URL = 500
MAX_SUMMARY = 5_000
MAX_KEYWORDS = 50
MAX_KEYWORD = 200
MAX_COMMENT = 2_000
MAX_JOURNAL_REF = 500
# Papers in one source. Real ones hold far fewer (a day of Hugging Face papers is about
# 50, an arXiv API page at most 2,000), and every record held costs memory: a source of
# a million tiny records within the byte cap would take gigabytes to parse.
MAX_RECORDS = 10_000
# Problems listed for one import (the command's output, the admin page, the run's log);
# the rest are counted.
MAX_ERRORS = 100
# Elements in one child of an Atom <feed>: an <entry> has a dozen and two per author.
# More means elements nested or repeated to fill memory, and the feed is refused.
MAX_ENTRY_ELEMENTS = 2 * MAX_AUTHORS + 100

# New-style ids (2404.16789) and old-style ones (hep-th/9901001, math.GT/0309136).
MAX_ARXIV_VERSION = 32767
ARXIV_ID = re.compile(
    r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?"
)
_PAGE_DATE = re.compile(r"^(?P<month>[A-Z][a-z]{2}) (?P<day>\d{1,2})$")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_ATOM = "{http://www.w3.org/2005/Atom}"
_ARXIV = "{http://arxiv.org/schemas/atom}"
_JSON_BYTES_PER_CONTAINER = 32


class ImportFailed(Exception):
    """The source could not be read or parsed; nothing was imported."""

    def __init__(
        self,
        message: str,
        errors: list[str] | None = None,
        rejected: int = 0,
        *,
        unreachable: bool = False,
    ):
        super().__init__(message)
        self.errors = errors or []
        self.rejected = rejected
        # The source could not be fetched at all (offline, down): worth trying again.
        self.unreachable = unreachable
        self.run: ImportRun | None = None  # the failed run, once recorded


@dataclass
class PaperRecord:
    where: str
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    arxiv_id: str | None = None
    arxiv_version: int | None = None
    abstract_url: str = ""
    pdf_url: str = ""
    published_on: date | None = None
    upvotes: int | None = None
    ai_summary: str = ""
    ai_keywords: list[str] = field(default_factory=list)
    hf_url: str = ""
    code_url: str = ""
    code_stars: int | None = None
    project_url: str = ""
    comments: int | None = None
    categories: list[str] = field(default_factory=list)
    arxiv_comment: str = ""
    journal_ref: str = ""

    def problems(self) -> list[str]:
        found = []
        if not self.title:
            found.append("the title is empty")
        elif len(self.title) > MAX_TITLE:
            found.append(f"the title is {len(self.title)} characters long (at most {MAX_TITLE})")
        if len(self.abstract) > MAX_ABSTRACT:
            found.append(f"the abstract is longer than {MAX_ABSTRACT} characters")
        if len(self.authors) > MAX_AUTHORS or any(len(a) > MAX_AUTHOR for a in self.authors):
            found.append("the author list is too long")
        if self.arxiv_id is not None and not ARXIV_ID.fullmatch(self.arxiv_id):
            found.append(f"{self.arxiv_id!r} is not an arXiv id")
        for name in ("abstract_url", "pdf_url", "hf_url", "code_url", "project_url"):
            url = getattr(self, name)
            if url and (urlsplit(url).scheme not in {"http", "https"} or len(url) > MAX_URL):
                found.append(f"{name.replace('_', ' ')} {url[:80]!r} is not an http(s) URL")
        for name in ("upvotes", "code_stars", "comments"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**31:
                found.append(f"{name.replace('_', ' ')} {value} is out of range")
        for name, limit in (
            ("ai_summary", MAX_SUMMARY),
            ("arxiv_comment", MAX_COMMENT),
            ("journal_ref", MAX_JOURNAL_REF),
        ):
            if len(getattr(self, name)) > limit:
                found.append(f"the {name.replace('_', ' ')} is longer than {limit} characters")
        if len(self.ai_keywords) > MAX_KEYWORDS or any(
            not k or len(k) > MAX_KEYWORD for k in self.ai_keywords
        ):
            found.append(
                f"the keywords are too many or too long (at most {MAX_KEYWORDS} "
                f"of {MAX_KEYWORD} characters)"
            )
        if len(self.categories) > MAX_KEYWORDS or not all(
            ARXIV_CATEGORY.fullmatch(c) for c in self.categories
        ):
            found.append(f"{self.categories[:5]!r} are not arXiv categories")
        # The column is a smallint on PostgreSQL: SQLite would store what it refuses.
        if self.arxiv_version is not None and not 1 <= self.arxiv_version <= MAX_ARXIV_VERSION:
            found.append(f"arXiv version {self.arxiv_version} is out of range")
        return found


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def __str__(self):
        return (
            f"{self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.rejected} rejected"
        )


# Reading ----------------------------------------------------------------------


def read_source(source: str) -> bytes:
    """The bytes of a file path or an http(s) URL, refusing oversized sources."""
    limit = settings.PAPERBOY_MAX_IMPORT_BYTES
    if urlsplit(source).scheme in {"http", "https"}:
        try:
            data = fetch.fetch(source, limit)
        except fetch.FetchFailed as exc:
            raise ImportFailed(str(exc), unreachable=True) from None
    else:
        path = Path(source)
        try:
            if path.stat().st_size > limit:
                raise ImportFailed(f"{source} is larger than {limit} bytes")
            # Not a device (/dev/zero has no size and no end) nor a pipe (which can block
            # for ever); and never more than the cap, should the file grow meanwhile.
            if not path.is_file():
                raise ImportFailed(f"{source} is not a regular file")
            with path.open("rb") as file:
                data = file.read(limit + 1)
        except OSError as exc:
            raise ImportFailed(f"could not read {source}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise ImportFailed(f"{source} is larger than {limit} bytes")
    return data


_SUFFIXES = {".json": "hf-json", ".xml": "arxiv-atom", ".atom": "arxiv-atom", ".txt": "hf-page"}


def detect_format(data: bytes, source: str = "") -> str:
    """The format named by the source's extension, else the one its content looks like."""
    suffix = Path(urlsplit(source).path).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{"):
        return "hf-json"
    if head == b"<":
        return "arxiv-atom"
    return "hf-page"


def _decode(data: bytes) -> str:
    # UTF-16 without a byte order mark decodes as "valid" UTF-8 with a NUL after every
    # ASCII letter, which would then be stripped into plausible text.
    if (nul := data.find(b"\x00")) != -1:
        raise ImportFailed(
            f"the source contains a NUL byte (byte {nul}): it is not UTF-8 text (UTF-16?)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"the source is not valid UTF-8 (byte {exc.start})") from None


def _too_many() -> ImportFailed:
    return ImportFailed(
        f"the source holds more than {MAX_RECORDS} papers: split it into smaller sources"
    )


def parse(data: bytes, fmt: str = "auto", *, today: date | None = None) -> list[PaperRecord]:
    """Parse a whole source; raise ImportFailed listing every bad record."""
    if fmt == "auto":
        fmt = detect_format(data)
    if fmt == "hf-page":
        records, errors = parse_hf_page(_decode(data), today=today or timezone.localdate()), []
    elif fmt == "hf-json":
        records, errors = parse_hf_json(data)
    elif fmt == "arxiv-atom":
        records, errors = parse_arxiv_atom(data)
    else:
        raise ImportFailed(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    rejected, problems_found = len(errors), len(errors)
    for record in records:
        if problems := record.problems():
            rejected += 1
            problems_found += len(problems)
            if len(errors) < MAX_ERRORS:
                errors.extend(f"{record.where}: {problem}" for problem in problems)
    if errors:
        if problems_found > MAX_ERRORS:
            errors = [*errors[:MAX_ERRORS], f"... and {problems_found - MAX_ERRORS} more"]
        raise ImportFailed(f"{rejected} record(s) rejected", errors, rejected)
    if not records:
        raise ImportFailed("the source contains no papers")
    return records


def _page_date(match: re.Match, today: date) -> date:
    month, day = _MONTHS[match["month"]], int(match["day"])
    # The page shows no year: take the latest such date that is not in the future.
    for year in range(today.year, today.year - 8, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise ValueError(f"{match.group(0)} is not a date")


def parse_hf_page(text: str, *, today: date) -> list[PaperRecord]:
    """The saved trending-papers page: header lines, a date line, then for each
    paper a title line followed by its abstract paragraph."""
    paragraphs = _paragraphs(text)
    records: list[PaperRecord] = []
    published: date | None = None
    pending_title: tuple[int, str] | None = None
    for line_no, paragraph in paragraphs:
        if match := _PAGE_DATE.match(paragraph):
            if pending_title:
                raise ImportFailed(
                    f"line {pending_title[0]}: the paper {pending_title[1]!r} has no abstract"
                )
            try:
                published = _page_date(match, today)
            except ValueError:
                raise ImportFailed(f"line {line_no}: {paragraph!r} is not a date") from None
            continue
        if published is None:
            continue  # page header: "Get trending papers in your email inbox!" and the like
        if pending_title is None:
            if "\n" in paragraph or len(paragraph) > MAX_TITLE:
                raise ImportFailed(
                    f"line {line_no}: expected a paper title, found a paragraph of "
                    f"{len(paragraph)} characters"
                )
            pending_title = (line_no, paragraph)
            continue
        title_line, title = pending_title
        if len(records) == MAX_RECORDS:
            raise _too_many()
        records.append(
            PaperRecord(
                where=f"line {title_line}",
                title=clean_line(title),
                abstract=clean_line(paragraph),
                published_on=published,
            )
        )
        pending_title = None
    if pending_title:
        raise ImportFailed(
            f"line {pending_title[0]}: the paper {pending_title[1]!r} has no abstract"
        )
    if published is None:
        raise ImportFailed("no date line (such as 'Mar 17') precedes the papers")
    return records


# Where str.splitlines() breaks lines.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _lines(text: str) -> Iterator[str]:
    """text.splitlines(), one line at a time: a source of a million short lines would
    otherwise be a million strings at once."""
    start = 0
    for match in _LINE_BREAK.finditer(text):
        yield text[start : match.start()]
        start = match.end()
    if start < len(text):
        yield text[start:]


def _paragraphs(text: str) -> Iterator[tuple[int, str]]:
    """Blank-line separated paragraphs with the line number each starts on."""
    start, lines = 0, []
    for number, line in enumerate(_lines(text), 1):
        if line.strip():
            if not lines:
                start = number
            lines.append(line.strip())
        elif lines:
            yield start, "\n".join(lines)
            lines = []
    if lines:
        yield start, "\n".join(lines)


def _split_arxiv_id(raw: str) -> tuple[str | None, int | None]:
    match = ARXIV_ID.search(raw or "")
    if not match:
        return None, None
    return match["id"], int(match["version"]) if match["version"] else None


def _parse_datetime(value) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def parse_hf_json(data: bytes) -> tuple[list[PaperRecord], list[str]]:
    """Hugging Face daily papers (GET /api/daily_papers): a list of entries, each
    holding a ``paper`` object with id, title, summary, authors and upvotes."""
    # Real feeds spend well over a hundred bytes on each object or array (an author is
    # about 70). One far denser is built to cost memory, not to carry papers: parsed,
    # a megabyte of "{}," is twenty megabytes of dictionaries.
    containers = data.count(b"{") + data.count(b"[")
    if containers > 1000 and containers * _JSON_BYTES_PER_CONTAINER > len(data):
        raise ImportFailed(
            f"the JSON holds {containers} objects and arrays in {len(data)} bytes, "
            "far more than a paper feed has"
        )
    try:
        items = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise ImportFailed(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ImportFailed("invalid JSON: arrays or objects nested too deeply") from None
    except ValueError as exc:  # a number of thousands of digits, say
        raise ImportFailed(f"invalid JSON: {exc}") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ImportFailed("expected a JSON list of daily papers")
    if len(items) > MAX_RECORDS:
        raise _too_many()
    records, errors = [], []
    for index, item in enumerate(items):
        try:
            records.append(_hf_json_record(item))
        except ValueError as exc:
            errors.append(f"entry {index}: {exc}")
    return records, errors


def _hf_json_record(item) -> PaperRecord:
    paper = item.get("paper", item) if isinstance(item, dict) else None
    if not isinstance(paper, dict):
        raise ValueError("expected an object with a 'paper' field")
    raw_id = paper.get("id")
    arxiv_id, version = _split_arxiv_id(raw_id if isinstance(raw_id, str) else "")
    if arxiv_id is None:
        raise ValueError(f"{str(raw_id)[:40]!r} is not an arXiv id")
    title, summary = paper.get("title"), paper.get("summary", "")
    if not isinstance(title, str) or not isinstance(summary, str):
        raise ValueError(f"{arxiv_id}: 'title' and 'summary' must be strings")
    authors = paper.get("authors") or []
    if not isinstance(authors, list) or not all(isinstance(a, dict | str) for a in authors):
        raise ValueError(f"{arxiv_id}: 'authors' must be a list of objects with a name")
    names = [a.get("name") if isinstance(a, dict) else a for a in authors]
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"{arxiv_id}: an author has no name")

    def whole(name: str, where: dict) -> int | None:
        value = where.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{arxiv_id}: {name!r} is not a whole number")
        return value

    def text(name: str) -> str:
        value = paper.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{arxiv_id}: {name!r} must be a string")
        return clean_line(value or "")

    keywords = paper.get("ai_keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ValueError(f"{arxiv_id}: 'ai_keywords' must be a list of strings")
    upvotes = whole("upvotes", paper) if "upvotes" in paper else whole("upvotes", item)
    return PaperRecord(
        where=f"entry {arxiv_id}",
        title=clean_line(title),
        abstract=clean_line(summary),
        authors=[clean_line(n) for n in names if n.strip()],
        arxiv_id=arxiv_id,
        arxiv_version=version,
        abstract_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        published_on=_parse_datetime(paper.get("publishedAt") or item.get("publishedAt")),
        upvotes=upvotes,
        ai_summary=text("ai_summary"),
        # Each once, as written first: "LLMs" and "LLMs" again say nothing more.
        ai_keywords=list(dict.fromkeys(k for k in map(clean_line, keywords) if k)),
        hf_url=f"https://huggingface.co/papers/{arxiv_id}",
        code_url=text("githubRepo"),
        code_stars=whole("githubStars", paper),
        project_url=text("projectPage"),
        comments=whole("numComments", item),
    )


def parse_arxiv_atom(data: bytes) -> tuple[list[PaperRecord], list[str]]:
    """The arXiv API's Atom feed (export.arxiv.org/api/query).

    Read as a stream, each entry dropped once turned into a record: memory holds one
    entry at a time, and an entry of absurd size is refused as it grows."""
    records, errors = [], []
    feed, depth, elements, index = None, 0, 0, 0
    events = ElementTree.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True)
    try:
        for event, element in events:
            if event == "start":
                depth += 1
                if feed is None:
                    if element.tag != f"{_ATOM}feed":
                        raise ImportFailed(f"expected an Atom <feed>, found <{element.tag}>")
                    feed = element
                elif (elements := elements + 1) > MAX_ENTRY_ELEMENTS:
                    raise ImportFailed(
                        f"an element of the feed holds more than {MAX_ENTRY_ELEMENTS} elements"
                    )
                continue
            depth -= 1
            if depth != 1:
                continue
            # A child of <feed> is complete.
            if element.tag == f"{_ATOM}entry":
                if index == MAX_RECORDS:
                    raise _too_many()
                try:
                    records.append(_atom_record(element))
                except ValueError as exc:
                    errors.append(f"entry {index}: {exc}")
                index += 1
            feed.clear()
            elements = 0
    except DefusedXmlException as exc:
        raise ImportFailed(f"refused unsafe XML: {exc}") from None
    except ParseError as exc:
        line, column = exc.position
        raise ImportFailed(f"invalid XML at line {line}, column {column}") from None
    return records, errors


def _atom_record(entry) -> PaperRecord:
    raw_id = (entry.findtext(f"{_ATOM}id") or "").strip()
    if "/api/errors" in raw_id:
        summary = clean_line(entry.findtext(f"{_ATOM}summary") or "")
        raise ImportFailed(f"the arXiv API answered with an error: {summary}")
    arxiv_id, version = _split_arxiv_id(raw_id)
    if arxiv_id is None:
        raise ValueError(f"{raw_id[:80]!r} is not an arXiv id")
    links = {
        (link.get("title") or link.get("rel")): link.get("href", "")
        for link in entry.findall(f"{_ATOM}link")
    }
    primary = entry.find(f"{_ARXIV}primary_category")
    categories = [primary.get("term", "")] if primary is not None else []
    categories += [c.get("term", "") for c in entry.findall(f"{_ATOM}category")]
    return PaperRecord(
        where=f"entry {arxiv_id}",
        title=clean_line(entry.findtext(f"{_ATOM}title") or ""),
        abstract=clean_line(entry.findtext(f"{_ATOM}summary") or ""),
        authors=[
            clean_line(name)
            for author in entry.findall(f"{_ATOM}author")
            if (name := author.findtext(f"{_ATOM}name"))
        ],
        arxiv_id=arxiv_id,
        arxiv_version=version,
        abstract_url=links.get("alternate") or f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=links.get("pdf", ""),
        published_on=_parse_datetime(entry.findtext(f"{_ATOM}published")),
        categories=list(dict.fromkeys(c.strip() for c in categories if c.strip())),
        arxiv_comment=clean_line(entry.findtext(f"{_ARXIV}comment") or ""),
        journal_ref=clean_line(entry.findtext(f"{_ARXIV}journal_ref") or ""),
    )


# Storing ----------------------------------------------------------------------

_MERGED = [
    f.name for f in fields(PaperRecord) if f.name not in {"where", "arxiv_id", "arxiv_version"}
]
# Fields one source alone gives, replaced by each import that gives them.
_LATEST = {
    "upvotes",
    "ai_summary",
    "ai_keywords",
    "hf_url",
    "code_url",
    "code_stars",
    "project_url",
    "comments",
    "categories",
    "arxiv_comment",
    "journal_ref",
}


def _find(record: PaperRecord) -> Paper | None:
    key = normalise_key(record.title)
    if record.arxiv_id:
        paper = Paper.objects.filter(arxiv_id=record.arxiv_id).first()
        # A paper first seen without an id (the trending page) gains one here.
        return paper or Paper.objects.filter(arxiv_id__isnull=True, title_key=key).first()
    return Paper.objects.filter(title_key=key).order_by("arxiv_id", "pk").first()


def _merge(paper: Paper, record: PaperRecord) -> bool:
    """Copy what the record adds to the paper; True if anything changed.

    Sources disagree (the page's date is its trending day, arXiv's is the
    submission), so a field once filled is replaced only by a newer arXiv
    version; otherwise re-importing any mix of sources would flip-flop. What
    only one source gives is the exception (upvotes, the AI summary, stars,
    categories): the latest import says it best, and only that source says it.
    """
    newer = (record.arxiv_version or 0) > (paper.arxiv_version or 0)
    changed = False
    if record.arxiv_id and paper.arxiv_id is None:
        paper.arxiv_id, changed = record.arxiv_id, True
    if newer:
        paper.arxiv_version, changed = record.arxiv_version, True
    for name in _MERGED:
        value = getattr(record, name)
        if value in (None, "", []) or getattr(paper, name) == value:
            continue
        if newer or name in _LATEST or getattr(paper, name) in (None, "", []):
            setattr(paper, name, value)
            changed = True
    return changed


def store(
    records: list[PaperRecord],
    source: str,
    progress: Callable[[Iterable], Iterable] = iter,
    *,
    embed_later: bool = False,
) -> ImportSummary:
    """Store parsed records, all or nothing, and score the new and changed papers.

    Embedding them (about 80 ms a paper) holds no transaction: it follows the commit,
    here, or in a task with ``embed_later`` (a web request must not wait for it).
    Until then the papers match by their words alone.
    """
    summary = ImportSummary()
    changed: list[Paper] = []
    retexted: list[int] = []
    with transaction.atomic():
        for record in progress(records):
            paper = _find(record)
            if paper is None:
                paper = Paper(source=source)
                _merge(paper, record)
                paper.save()
                summary.created += 1
                changed.append(paper)
                continue
            before = (paper.title, paper.abstract, paper.ai_keywords)
            if _merge(paper, record):
                paper.save()
                summary.updated += 1
                changed.append(paper)
                if (paper.title, paper.abstract, paper.ai_keywords) != before:
                    retexted.append(paper.pk)
            else:
                summary.unchanged += 1
        # A vector of the old text (a title alone, before the abstract came) would stand.
        PaperEmbedding.objects.filter(paper_id__in=retexted).delete()
        # Inside the transaction: a failed scoring leaves no unscored papers behind.
        score_papers(changed)
    if embed_later:
        ids = [paper.pk for paper in changed]
        for start in range(0, len(ids), 500):
            transaction.on_commit(lambda batch=ids[start : start + 500]: _embed_task().delay(batch))
        return summary
    try:
        embed_and_rescore(changed)
    except Exception:
        # The worker's next start re-embeds what has no vector (papers.tasks.reembed).
        log.exception("embedding %d imported papers", len(changed))
    return summary


def _embed_task():
    # papers.tasks imports this module (the feed import task): the task is looked up
    # when it is queued, not when this module loads.
    from papers.tasks import embed_papers

    return embed_papers


def import_source(
    source: str,
    fmt: str = "auto",
    *,
    progress: Callable[[Iterable], Iterable] = iter,
    on_parsed: Callable[[list[PaperRecord]], None] | None = None,
    data: bytes | None = None,
    embed_later: bool = False,
) -> ImportSummary:
    """Read, parse and store one source; record the run either way.

    ``data``, when given, is the source's content (an upload): ``source`` only names it.
    ``embed_later``: embed the papers in a task (see ``store``).
    """
    started = timezone.now()
    try:
        if data is None:
            data = read_source(source)
        elif len(data) > settings.PAPERBOY_MAX_IMPORT_BYTES:
            raise ImportFailed(
                f"{source} is larger than {settings.PAPERBOY_MAX_IMPORT_BYTES} bytes"
            )
        detected = detect_format(data, source) if fmt == "auto" else fmt
        records = parse(data, detected)
        if on_parsed:
            on_parsed(records)
        summary = store(records, source=detected, progress=progress, embed_later=embed_later)
    except ImportFailed as exc:
        exc.run = ImportRun.objects.create(
            source=source[:1000],
            format=fmt,
            status=ImportRun.Status.FAILED,
            rejected=exc.rejected,
            error="\n".join([str(exc), *exc.errors])[:10_000],
            started_at=started,
        )
        raise
    ImportRun.objects.create(
        source=source[:1000],
        format=detected,
        status=ImportRun.Status.SUCCEEDED,
        created=summary.created,
        updated=summary.updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        started_at=started,
    )
    return summary
