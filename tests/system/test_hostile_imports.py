"""Hostile sources: too big, entity-expanding, nested without end, badly encoded, cut
short. Each is refused with a clear error, stores nothing, is recorded as a failed run,
and is refused in memory that stays within a few times the byte cap, measured with
tracemalloc (which sees every thread of this process, the live server's too).

Through the three ways in: import_source (the feed task's way), the import_papers
command and the admin's "Import papers" page."""

import http.client
import http.server
import os
import re
import secrets
import threading
import tracemalloc
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from papers import importers
from papers.importers import ImportFailed, import_source
from papers.models import ImportRun, Paper
from tests.support.paths import SAMPLES

CAP = 1_000_000
# What refusing a source may cost: the source itself once or twice, and change.
MEMORY_BOUND = 3 * CAP
# A source built of the smallest possible records within the cap is parsed before its
# records can be counted: Python spends a pointer (8 bytes) or more on each 2 bytes
# ("0,"), and up to MAX_RECORDS records are kept (about 5 MB whatever the cap).
DENSE_MEMORY_BOUND = 8 * CAP
IMPORT_PAGE = "/admin/papers/importrun/import/"


@pytest.fixture(autouse=True)
def cap(settings):
    settings.PAPERBOY_MAX_IMPORT_BYTES = CAP


@pytest.fixture
def known_papers(db):
    """Papers already there, which a refused import must leave alone."""
    import_source(str(SAMPLES / "hf-daily-papers.json"))
    ImportRun.objects.all().delete()
    return set(Paper.objects.values_list("pk", "arxiv_id", "title", "abstract", "upvotes"))


@contextmanager
def peak_memory():
    """{"peak": bytes} allocated at most at one time in the block, by any thread."""
    measured = {}
    tracemalloc.start()
    try:
        yield measured
    finally:
        measured["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def assert_refused_and_nothing_stored(known_papers, message: str, runs: int = 1):
    assert set(Paper.objects.values_list("pk", "arxiv_id", "title", "abstract", "upvotes")) == (
        known_papers
    )
    failed = list(ImportRun.objects.all())
    assert len(failed) == runs
    assert all(run.status == ImportRun.Status.FAILED for run in failed)
    assert all(message in run.error for run in failed), [run.error for run in failed]


def refuse(source: str, fmt: str = "auto", **kwargs) -> tuple[ImportFailed, int]:
    with peak_memory() as memory, pytest.raises(ImportFailed) as refused:
        import_source(source, fmt, **kwargs)
    return refused.value, memory["peak"]


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# Hostile sources, by kind ----------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE feed [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n'
        % (n, b"".join([b"&lol%s;" % (b"" if n == 1 else b"%d" % (n - 1))] * 10))
        for n in range(1, 10)
    )
    + b']>\n<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&lol9;</title></entry></feed>'
)
QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><feed xmlns="http://www.w3.org/2005/Atom"><entry><title>'
    + b"&a;" * 10_000
    + b"</title></entry></feed>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2401.00001v1'
    b"</id><title>&secret;</title><summary>s</summary></entry></feed>"
)
PARAMETER_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">'
    b'%remote;]><feed xmlns="http://www.w3.org/2005/Atom"/>'
)


def external_dtd(base: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE feed SYSTEM "{base}/evil.dtd">'
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&evil;</title></entry></feed>'
    ).encode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "xml",
    [BILLION_LAUGHS, QUADRATIC_BLOWUP, EXTERNAL_ENTITY, PARAMETER_ENTITY],
    ids=["billion laughs", "quadratic blowup", "external entity", "parameter entity"],
)
def test_xml_with_a_dtd_or_entities_is_refused_before_expanding_anything(
    tmp_path, known_papers, xml
):
    error, peak = refuse(write(tmp_path, "feed.xml", xml))

    assert str(error).startswith("refused unsafe XML")
    assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "refused unsafe XML")


@pytest.mark.django_db
def test_an_external_dtd_is_never_fetched(tmp_path, feed_server, known_papers):
    folder, base = feed_server
    (folder / "evil.dtd").write_text('<!ENTITY evil SYSTEM "file:///etc/passwd">')
    requests = []
    handler = http.server.SimpleHTTPRequestHandler.log_message

    def record(self, format, *args):
        requests.append(self.path)

    http.server.SimpleHTTPRequestHandler.log_message = record
    try:
        error, _ = refuse(write(tmp_path, "feed.xml", external_dtd(base)))
    finally:
        http.server.SimpleHTTPRequestHandler.log_message = handler

    assert str(error).startswith("refused unsafe XML")
    assert requests == []
    assert_refused_and_nothing_stored(known_papers, "refused unsafe XML")


@pytest.mark.django_db
def test_xinclude_is_not_followed(tmp_path):
    xml = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:xi="http://www.w3.org/2001/XInclude">'
        b"<entry><id>http://arxiv.org/abs/2401.00001v1</id><title>Included?</title>"
        b'<summary><xi:include href="file:///etc/passwd" parse="text"/></summary></entry></feed>'
    )

    import_source(write(tmp_path, "feed.xml", xml))

    assert Paper.objects.get().abstract == ""


def nested_xml(depth: int, *, in_entry: bool) -> bytes:
    inner = b"<a>" * depth + b"x" + b"</a>" * depth
    if in_entry:
        inner = b"<entry><id>http://arxiv.org/abs/2401.00001v1</id>" + inner + b"</entry>"
    return b'<feed xmlns="http://www.w3.org/2005/Atom">' + inner + b"</feed>"


@pytest.mark.django_db
@pytest.mark.parametrize("in_entry", [True, False], ids=["in an entry", "in the feed"])
def test_deeply_nested_xml_is_refused(tmp_path, known_papers, in_entry):
    xml = nested_xml(CAP // 8, in_entry=in_entry)
    assert len(xml) < CAP

    error, peak = refuse(write(tmp_path, "feed.xml", xml))

    assert "an element of the feed holds more than" in str(error)
    assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "holds more than")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("json_text", "message"),
    [
        # Brackets only: denser than any feed, refused before parsing.
        (b"[" * (CAP // 2 - 1) + b"]" * (CAP // 2 - 1), "far more than a paper feed has"),
        # Objects under long keys, sparse enough to be parsed: too deep for the parser.
        (
            b'{"' + b"k" * 40 + b'":' + (b'{"' + b"k" * 40 + b'":') * 20_000 + b"1" + b"}" * 20_001,
            "nested too deeply",
        ),
        (b"[" + b"{}," * (CAP // 3 - 2) + b"{}]", "far more than a paper feed has"),
        (b"[" + b"9" * 5_000 + b"]", "Exceeds the limit (4300 digits)"),
    ],
    ids=["nested arrays", "nested objects", "a third of a million objects", "a huge number"],
)
def test_json_built_to_exhaust_the_parser_is_refused(tmp_path, known_papers, json_text, message):
    assert len(json_text) < CAP

    error, peak = refuse(write(tmp_path, "feed.json", json_text))

    assert message in str(error)
    assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, message)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("page.txt", b"Mar 17\n\n" + b"T\n\nA\n\n" * (CAP // 6 - 2)),
        ("feed.json", b"[" + b"0," * (CAP // 2 - 2) + b"0]"),
        (
            "feed.xml",
            b'<feed xmlns="http://www.w3.org/2005/Atom">'
            + b"<entry/>" * (CAP // 8 - 10)
            + b"</feed>",
        ),
    ],
    ids=["page", "json", "atom"],
)
def test_a_source_of_countless_tiny_records_is_refused(tmp_path, known_papers, name, source):
    assert len(source) < CAP

    error, peak = refuse(write(tmp_path, name, source))

    assert f"more than {importers.MAX_RECORDS} papers" in str(error)
    assert peak < DENSE_MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "papers: split it")


@pytest.mark.django_db
def test_problems_are_counted_but_only_the_first_are_listed(tmp_path, known_papers):
    page = b"Mar 17\n\n" + b"".join(
        b"Title %d\n\n" % n + b"x" * (importers.MAX_ABSTRACT + 1) + b"\n\n" for n in range(30)
    )
    feed = [{"paper": {"id": "nope", "title": "t", "summary": "s" * 100}}] * 5_000
    json_source = str(feed).replace("'", '"').encode()

    page_error, _ = refuse(write(tmp_path, "page.txt", page))
    json_error, _ = refuse(write(tmp_path, "feed.json", json_source))

    assert page_error.rejected == 30 and len(page_error.errors) == 30
    assert json_error.rejected == 5_000
    assert len(json_error.errors) == importers.MAX_ERRORS + 1
    assert json_error.errors[-1] == f"... and {5_000 - importers.MAX_ERRORS} more"


# Encodings -----------------------------------------------------------------------

TEXT = {
    "page.txt": "Mar 17\n\nThe ünïcode title\n\nAn abstract about Gödel and naïve sets.\n",
    "feed.json": '[{"paper": {"id": "2401.04088", "title": "The ünïcode title",'
    ' "summary": "Gödel and naïve sets."}}]',
    "feed.xml": '<feed xmlns="http://www.w3.org/2005/Atom"><entry>'
    "<id>http://arxiv.org/abs/2401.04088v1</id><title>The ünïcode title</title>"
    "<summary>Gödel and naïve sets.</summary></entry></feed>",
}
ENCODING_MESSAGES = {
    "page.txt": {"bad": "not valid UTF-8", "nul": "NUL byte", "utf16": "NUL byte"},
    "feed.json": {"bad": "not valid UTF-8", "nul": "NUL byte", "utf16": "NUL byte"},
    # XML is refused by its parser; UTF-16 it reads, BOM or not (next test).
    "feed.xml": {"bad": "invalid XML", "nul": "invalid XML"},
}
BROKEN = {
    "invalid UTF-8": ("bad", lambda text: text.encode().replace("ü".encode(), b"\xfc")),
    "UTF-16 without BOM": ("utf16", lambda text: text.encode("utf-16-le")),
    "UTF-16 big-endian without BOM": ("utf16", lambda text: text.encode("utf-16-be")),
    "a NUL byte": ("nul", lambda text: text.encode().replace(b"title", b"ti\x00tle")),
    "Latin-1": ("bad", lambda text: text.encode("latin-1")),
    "cut inside a character": (
        "bad",
        lambda text: text.encode()[: text.encode().index(b"\xc3\xbc") + 1],
    ),
    "an overlong encoding": ("bad", lambda text: text.encode().replace(b"T", b"\xc1\x94")),
    "a lone surrogate": ("bad", lambda text: text.encode().replace(b"T", b"\xed\xa0\x80")),
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "broken"),
    [
        (name, broken)
        for name in TEXT
        for broken, (kind, _) in BROKEN.items()
        if kind in ENCODING_MESSAGES[name]
    ],
)
def test_a_badly_encoded_source_is_refused_naming_the_problem(tmp_path, known_papers, name, broken):
    kind, encode = BROKEN[broken]
    data = encode(TEXT[name])
    # The same text, well encoded, imports: the encoding is what is refused.
    assert importers.parse(TEXT[name].encode(), importers.detect_format(b"", name))

    error, peak = refuse(write(tmp_path, name, data))

    message = ENCODING_MESSAGES[name][kind]
    assert message in str(error)
    assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, message)


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_xml_in_utf16_is_fine(tmp_path, encoding):
    # Not hostile: XML tells UTF-16 by its BOM or by how "<?xml" starts (XML 1.0, F.1).
    data = ('<?xml version="1.0" encoding="UTF-16"?>' + TEXT["feed.xml"]).encode(encoding)

    import_source(write(tmp_path, "feed.xml", data))

    assert Paper.objects.get().title == "The ünïcode title"


# Truncated sources -----------------------------------------------------------------


def cut_points(data: bytes) -> list[int]:
    """Nine cuts through the content and one just before its last character."""
    end = len(data.rstrip())
    return sorted({end * n // 10 for n in range(1, 10)} | {end - 1, 1})


@pytest.mark.django_db
@pytest.mark.parametrize("sample", ["hf-daily-papers.json", "arxiv-atom.xml"])
def test_a_structured_source_cut_anywhere_is_refused(tmp_path, known_papers, sample):
    data = (SAMPLES / sample).read_bytes()
    points = cut_points(data)

    for end in points:
        error, peak = refuse(write(tmp_path, sample, data[:end]))
        assert re.match(r"invalid (JSON|XML)|the source is not valid UTF-8", str(error)), (
            end,
            error,
        )
        assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "invalid", runs=len(points))


@pytest.mark.django_db
def test_a_page_cut_after_a_title_is_refused(tmp_path, known_papers):
    # A page has no closing mark: cut inside an abstract it is a page with a shorter
    # abstract. Cut after a title, a paper is missing its abstract.
    data = (SAMPLES / "trending-papers-page.txt").read_text()
    title = "Continual Learning of Large Language Models: A Comprehensive Survey"
    cut = data[: data.index(title) + len(title) + 1]

    error, _ = refuse(write(tmp_path, "page.txt", cut.encode()))

    assert f"the paper {title!r} has no abstract" in str(error)
    assert_refused_and_nothing_stored(known_papers, "has no abstract")


# Too big -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_file_beyond_the_cap_is_refused_unread(tmp_path, known_papers):
    path = tmp_path / "huge.json"
    with path.open("wb") as file:
        file.write((SAMPLES / "hf-daily-papers.json").read_bytes())
        file.truncate(50 * CAP)  # sparse: 50 MB on paper, nothing on disk

    error, peak = refuse(str(path))

    assert str(error) == f"{path} is larger than {CAP} bytes"
    assert peak < CAP / 10
    assert_refused_and_nothing_stored(known_papers, "larger than")


@pytest.mark.django_db
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "fifo"])
def test_a_device_or_a_pipe_is_refused_without_reading_it(tmp_path, known_papers, device):
    if device == "fifo":
        device = str(tmp_path / "feed.json")
        os.mkfifo(device)  # opening it would block until a writer came

    error, peak = refuse(device)

    assert str(error) == f"{device} is not a regular file"
    assert peak < CAP / 10
    assert_refused_and_nothing_stored(known_papers, "not a regular file")


class _EndlessHandler(http.server.BaseHTTPRequestHandler):
    """Answers with a JSON array that never ends, chunked, without a length."""

    protocol_version = "HTTP/1.1"
    chunk = b"[" + b'{"paper": {"id": "2401.04088", "title": "t", "summary": "s"}},' * 1000

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            # Bounded anyway, so that a client that never stops cannot hang the run.
            while sent < 200 * CAP:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(self.chunk), self.chunk))
                sent += len(self.chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format, *args):
        pass


@pytest.fixture
def endless_server(settings):
    settings.PAPERBOY_FETCH_ALLOW = ["127.0.0.1"]  # a loopback feed, allowed for the test
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.django_db
def test_a_huge_url_response_is_cut_off_at_the_cap(feed_server, known_papers):
    folder, base = feed_server
    with (folder / "daily.json").open("wb") as file:
        file.truncate(50 * CAP)

    error, peak = refuse(f"{base}/daily.json")

    assert str(error) == f"{base}/daily.json is larger than {CAP} bytes"
    assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "larger than")


@pytest.mark.django_db
def test_an_endless_url_response_is_cut_off_at_the_cap(endless_server, known_papers):
    error, peak = refuse(f"{endless_server}/api/daily_papers")

    assert str(error) == f"{endless_server}/api/daily_papers is larger than {CAP} bytes"
    assert peak < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "larger than")


# The command ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("feed.xml", BILLION_LAUGHS, "refused unsafe XML"),
        (
            "feed.json",
            b"[" * (CAP // 2 - 1) + b"]" * (CAP // 2 - 1),
            "far more than a paper feed has",
        ),
        ("page.txt", TEXT["page.txt"].encode("utf-16-le"), "NUL byte"),
        ("feed.json", (SAMPLES / "hf-daily-papers.json").read_bytes()[:-40], "invalid JSON"),
        ("huge.txt", b"Mar 17\n\n" + b"x" * CAP, f"larger than {CAP} bytes"),
    ],
    ids=["billion laughs", "nested JSON", "UTF-16", "truncated", "too big"],
)
def test_the_command_refuses_hostile_files_with_a_clear_error(
    tmp_path, known_papers, name, data, message
):
    path = write(tmp_path, name, data)

    with peak_memory() as memory, pytest.raises(CommandError) as refused:
        call_command("import_papers", path, verbosity=0)

    assert message in str(refused.value)
    assert "Nothing was imported" in str(refused.value)
    assert memory["peak"] < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, message)


# The admin's "Import papers" page ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("feed.xml", BILLION_LAUGHS, "refused unsafe XML"),
        ("feed.xml", EXTERNAL_ENTITY, "refused unsafe XML"),
        ("feed.xml", nested_xml(CAP // 8, in_entry=True), "holds more than"),
        (
            "feed.json",
            b"[" * (CAP // 2 - 1) + b"]" * (CAP // 2 - 1),
            "far more than a paper feed has",
        ),
        ("page.txt", TEXT["page.txt"].encode("utf-16-le"), "NUL byte"),
        ("feed.json", TEXT["feed.json"].encode("utf-16"), "NUL byte"),
        ("feed.xml", (SAMPLES / "arxiv-atom.xml").read_bytes()[:-100], "invalid XML"),
        ("big.json", b"[" + b" " * CAP + b"]", f"larger than {CAP} bytes"),
    ],
    ids=[
        "billion laughs",
        "external entity",
        "nested XML",
        "nested JSON",
        "UTF-16",
        "UTF-16 with BOM",
        "truncated",
        "too big",
    ],
)
def test_the_admin_import_page_refuses_hostile_uploads(
    admin_client, known_papers, name, data, message
):
    upload = SimpleUploadedFile(name, data)

    response = admin_client.post(IMPORT_PAGE, {"upload": upload, "url": "", "format": "auto"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was imported." in page
    assert message in page.replace("&#x27;", "'")
    assert_refused_and_nothing_stored(known_papers, message)


@pytest.mark.django_db
def test_the_admin_import_page_cuts_off_an_endless_url(admin_client, endless_server, known_papers):
    url = f"{endless_server}/api/daily_papers"

    with peak_memory() as memory:
        response = admin_client.post(IMPORT_PAGE, {"url": url, "format": "auto"})

    assert response.status_code == 200
    assert f"is larger than {CAP} bytes. Nothing was imported." in response.content.decode()
    assert memory["peak"] < MEMORY_BOUND
    assert_refused_and_nothing_stored(known_papers, "larger than")


def _multipart(boundary: str, fields: dict[str, str], filename: str) -> tuple[bytes, bytes]:
    """The multipart body around a file's content: (what goes before it, after it)."""
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; '
        f'filename="{filename}"\r\nContent-Type: application/json\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.django_db(transaction=True)
def test_a_huge_upload_to_the_admin_is_refused_in_bounded_memory(live_server, django_user_model):
    """Streamed to a real server, so that only the server's memory is measured: the
    test client would hold the whole body itself."""
    curator = django_user_model.objects.create_superuser("curator", "c@example.org", "x" * 20)
    browser = Client()
    browser.force_login(curator)
    session = browser.cookies["sessionid"].value
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.request("GET", IMPORT_PAGE, headers={"Cookie": f"sessionid={session}"})
    form = connection.getresponse()
    html = form.read().decode()
    assert form.status == 200
    csrf_cookie = re.search(r"csrftoken=([^;]+)", form.headers["Set-Cookie"]).group(1)
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    boundary = f"paperboy{secrets.token_hex(8)}"
    head, tail = _multipart(
        boundary, {"csrfmiddlewaretoken": csrf_token, "url": "", "format": "auto"}, "huge.json"
    )
    chunk, chunks = b" " * 65_536, 50 * CAP // 65_536

    def body():
        yield head
        for _ in range(chunks):
            yield chunk
        yield tail

    with peak_memory() as memory:
        connection.request(
            "POST",
            IMPORT_PAGE,
            body=body(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + chunks * len(chunk) + len(tail)),
                "Cookie": f"sessionid={session}; csrftoken={csrf_cookie}",
            },
        )
        answer = connection.getresponse()
        page = answer.read().decode()
    connection.close()

    assert answer.status == 200
    assert f"upload: huge.json is larger than {CAP} bytes. Nothing was imported." in page
    assert memory["peak"] < MEMORY_BOUND
    assert not Paper.objects.exists()
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
