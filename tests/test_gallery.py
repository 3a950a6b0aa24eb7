"""The HTML gallery report: every row a card in manifest order, values shown as text and never as
markup, only http(s) URLs and relative paths to existing files in src/href, and a page that a
real browser (headless Chromium) renders as a person would see it."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchrun.journal import Download, ReportRow
from batchrun.journal.records import AssetUse
from batchrun.models import Output
from batchrun.report import SUFFIXES, check_report_path, write_reports
from batchrun.report.html import HtmlReport, relative_href, web_url

T0 = 1_764_337_722.0
COLUMNS = ["id", "prompt", "reference:imageUrl"]


def row(idx: int, **kw: object) -> ReportRow:
    base: dict[str, object] = dict(
        idx=idx, row_id=f"r{idx}", technique_id="text-to-image",
        cells=[f"r{idx}", f"prompt {idx}", None], state="completed", attempt=1,
        idem_key=f"br1-{idx}", run_id=f"run{idx}", run_status="completed", charged_cost=0.25,
        cost_final=True, error_code=None, error_message=None,
        outputs=[Output("image", "imageUrl", f"https://media.example/{idx}.png")],
        created_at=T0 + idx, started_at=T0 + idx + 1, completed_at=T0 + idx + 5,
    )  # fmt: skip
    base.update(kw)
    return ReportRow(**base)  # type: ignore[arg-type]


def failed(idx: int, message: str = "the provider timed out", **kw: object) -> ReportRow:
    return row(idx, state="failed", run_status="failed", error_code="GENERATION_PROVIDER_TIMEOUT",
               error_message=message, outputs=[], charged_cost=0.0, cost_final=True,
               **kw)  # fmt: skip


def png(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> bytes:
    """A vertical gradient as a PNG file, made with zlib alone."""
    lines = []
    for y in range(height):
        f = y / max(1, height - 1)
        pixel = bytes(round(a + (b - a) * f) for a, b in zip(top, bottom, strict=True))
        lines.append(b"\x00" + pixel * width)

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data))
        return struct.pack(">I", len(data)) + tag + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(lines)))
        + chunk(b"IEND", b"")
    )


# -- a small DOM from the standard library's parser ------------------------------------------

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.attrs.get("class", "").split())
        ]

    def one(self, tag: str | None = None, cls: str | None = None) -> Node:
        found = self.all(tag, cls)
        assert len(found) == 1, f"{len(found)} <{tag} class={cls}> elements"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(path: Path) -> Node:
    builder = _Builder()
    with open(path, encoding="utf-8", newline="") as fh:
        builder.feed(fh.read())
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


TAGS = {"#document", "html", "head", "meta", "title", "style", "body", "header", "div", "h1",
        "dl", "dt", "dd", "time", "nav", "button", "b", "span", "main", "article", "a", "img",
        "video", "audio", "p", "footer", "script"}  # fmt: skip
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def assert_safe_page(doc: Node) -> None:
    """Only the page's own elements, one script, no handlers, links only to http(s) URLs or
    relative paths."""
    tags = {n.tag for n in doc.walk()}
    assert tags <= TAGS, tags - TAGS
    assert len(doc.all("script")) == 1
    for n in doc.walk():
        assert not any(k.startswith("on") for k in n.attrs), n
        for attr in ("src", "href"):
            if attr in n.attrs:
                value = n.attrs[attr]
                assert web_url(value) == value or (
                    not _SCHEME.match(value) and not value.startswith("//") and value.strip()
                ), value


def cards(doc: Node) -> list[Node]:
    return doc.all("article", "card")


def field_of(card: Node, label: str) -> Node:
    children = [c for c in card.one("dl", "inputs").children if isinstance(c, Node)]
    for dt, dd in zip(children[::2], children[1::2], strict=True):
        if dt.text() == label:
            return dd
    raise AssertionError(f"no input {label!r} on the card")


# -- the page ---------------------------------------------------------------------------------


def test_html_is_a_report_format() -> None:
    assert ".html" in SUFFIXES
    check_report_path(Path("out/gallery.HTML"))
    with pytest.raises(ValueError, match=r"\.html"):
        check_report_path(Path("out/gallery.htm"))


def test_every_row_is_a_card_in_manifest_order_under_a_header_with_the_totals(
    tmp_path: Path,
) -> None:
    rows = [
        row(0),
        failed(1),
        row(2, charged_cost=1.5),
        row(3, state="rejected", run_id=None, run_status=None, charged_cost=None,
            cost_final=False, outputs=[], error_code="invalid_row",
            error_message="prompt: empty", created_at=None, started_at=None,
            completed_at=None),
        row(4, state="pending", run_id=None, run_status=None, charged_cost=None,
            cost_final=False, outputs=[], created_at=None, started_at=None, completed_at=None),
    ]  # fmt: skip
    page, table = tmp_path / "out" / "gallery.html", tmp_path / "out" / "report.csv"
    counts = write_reports(
        [page, table], rows, COLUMNS, batch="spring <b>campaign</b>", wall_seconds=125.0,
        made_at=T0,
    )  # fmt: skip
    assert counts == {"completed": 2, "failed": 1, "rejected": 1, "unsubmitted": 1}
    assert table.exists() and not list(page.parent.glob(".*tmp"))

    doc = parse(page)
    assert_safe_page(doc)
    assert doc.one("h1").text() == "spring <b>campaign</b>"
    assert "spring <b>campaign</b>" in doc.one("title").text()
    header = doc.one("header", "top")
    stats = {n.attrs.get("id"): n.text() for n in header.all("dd")}
    assert stats["total"] == "5"
    assert stats["cost"] == "$1.75"  # 0.25 + 1.5; the failed run was not charged
    assert stats["wall"] == "2 min 05 s"
    assert "2025-11-28 13:48:42 UTC" in doc.one("time").text()
    filters = {b.attrs["data-filter"]: b.attrs["data-count"] for b in header.all("button")}
    assert filters == {"all": "5", "completed": "2", "failed": "1", "rejected": "1",
                       "unsubmitted": "1"}  # fmt: skip

    found = cards(doc)
    assert [c.one("span", "rid").text() for c in found] == ["r0", "r1", "r2", "r3", "r4"]
    assert [c.attrs["data-status"] for c in found] == [
        "completed", "failed", "completed", "rejected", "unsubmitted"
    ]  # fmt: skip
    assert field_of(found[0], "prompt").text() == "prompt 0"
    assert found[0].one("img").attrs["src"] == "https://media.example/0.png"
    assert found[0].one("img").attrs["loading"] == "lazy"
    assert found[0].one("a", "full").attrs["href"] == "https://media.example/0.png"
    assert found[0].one("span", "cost").text() == "$0.25"
    assert found[0].one("span", "took").text() == "4.0 s"
    err = found[1].one("div", "err")
    assert err.one("div", "err-code").text().startswith("GENERATION_PROVIDER_TIMEOUT")
    assert err.one("p", "err-msg").text() == "the provider timed out"
    assert found[3].one("p", "err-msg").text() == "prompt: empty"
    assert found[4].all("div", "err") == [] and found[4].all("img") == []
    assert found[4].one("div", "empty").text() == "not sent yet"


def test_without_a_wall_time_the_header_shows_the_span_of_the_runs(tmp_path: Path) -> None:
    page = tmp_path / "g.html"
    write_reports([page], [row(0), row(9)], COLUMNS)  # runs from T0 to T0 + 14
    doc = parse(page)
    assert doc.one("h1").text() == "batchrun report"
    assert {n.attrs.get("id"): n.text() for n in doc.all("dd")}["wall"] == "14.0 s"


def test_an_empty_batch_says_so(tmp_path: Path) -> None:
    page = tmp_path / "g.html"
    assert write_reports([page], [], COLUMNS, batch="b") == {}
    doc = parse(page)
    assert cards(doc) == [] and "no rows" in doc.one("p", "nothing").text()


def test_thumbnails_are_the_downloaded_files_relative_to_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the downloader records DIR/name as given: relative to here
    files = tmp_path / "files"
    files.mkdir()
    (files / "r0__image.png").write_bytes(png(4, 4, (200, 0, 0), (0, 0, 200)))
    (files / "r1 #?:x.png").write_bytes(png(4, 4, (0, 200, 0), (0, 0, 0)))
    rows = [
        row(0, downloads=[Download("r0", "image", "u", "files/r0__image.png", 10, "s")]),
        row(1, downloads=[Download("r1", "image", "u", str(files / "r1 #?:x.png"), 10, "s")]),
        row(2, downloads=[Download("r2", "image", "u", "files/gone.png", 10, "s")]),
    ]
    page = tmp_path / "share" / "gallery.html"
    write_reports([page], rows, COLUMNS)
    found = cards(parse(page))
    srcs = [c.one("img").attrs["src"] for c in found]
    assert srcs == [
        "../files/r0__image.png",
        "../files/r1%20%23%3F%3Ax.png",
        "https://media.example/2.png",  # the file is gone: the URL instead
    ]
    assert found[0].one("a", "full").attrs["href"] == "../files/r0__image.png"
    for src in srcs[:2]:
        assert (page.parent / unquote(src)).resolve().is_file()


def test_a_local_photo_sent_as_an_asset_shows_as_its_asset(tmp_path: Path) -> None:
    url = "https://assets.example/ast_1/sku.png"
    use = AssetUse("reference", "photos/sku.png", "ab" * 32, "ast_1", url)
    page = tmp_path / "gallery.html"
    write_reports([page], [row(0, cells=["r0", "a prompt", "photos/sku.png"], outputs=[],
                               assets=[use])], COLUMNS)  # fmt: skip
    (card,) = cards(parse(page))
    assert card.one("img").attrs["src"] == url


def test_every_kind_of_output_and_input_gets_its_element(tmp_path: Path) -> None:
    page = tmp_path / "g.html"
    out = HtmlReport(page, ["id", "inputs", "ref:imageUrl", "clip:videoUrl", "note"], batch="b")
    rec: dict[str, Any] = {
        "id": "a", "row_id": "a", "technique_id": "t", "status": "completed",
        "charged_cost": 0.004, "cost_status": "final", "error_code": None, "error_message": None,
        "created_at": None, "started_at": None, "completed_at": None, "downloads": [],
        "inputs": '[{"id":"prompt","type":"text","value":"a <i>cat</i>"},'
                  '{"id":"photo","type":"imageUrl","value":"https://in.example/p.jpg"}]',
        "ref:imageUrl": "javascript:alert(1)", "clip:videoUrl": "https://in.example/c.mp4",
        "note": "see https://x.example",
        "outputs": [
            {"output_id": "img", "type": "imageUrl", "url": "https://m.example/1.png"},
            {"output_id": "vid", "type": "videoUrl", "url": "https://m.example/1.mp4"},
            {"output_id": "snd", "type": "audioUrl", "url": "https://m.example/1.mp3"},
            {"output_id": "doc", "type": "documentUrl", "url": "https://m.example/r%20p.pdf"},
            {"output_id": "cap", "type": "text", "url": "a caption <script>x()</script>"},
            {"output_id": "bad", "type": "imageUrl", "url": "data:image/png;base64,AAAA"},
        ],
    }  # fmt: skip
    out.add(rec)
    out.add({**rec, "row_id": "b", "id": "b", "status": "failed", "error_code": "SERVER_ERROR",
             "error_tier": "retry_now", "error_message": "try again", "outputs": []})  # fmt: skip
    out.close()
    doc = parse(page)
    assert_safe_page(doc)
    first, second = cards(doc)
    media = first.one("div", "media")
    assert [i.attrs["src"] for i in media.all("img")] == ["https://m.example/1.png"]
    assert media.one("video").attrs["src"] == "https://m.example/1.mp4"
    assert "controls" in media.one("video").attrs and media.one("video").attrs["preload"] == "none"
    assert media.one("audio").attrs["src"] == "https://m.example/1.mp3"
    assert media.one("a", "doc").attrs["href"] == "https://m.example/r%20p.pdf"
    assert media.one("a", "doc").text() == "r p.pdf"
    assert media.one("p", "txt").text() == "a caption <script>x()</script>"
    assert media.one("p", "plain").text() == "data:image/png;base64,AAAA"  # shown, not loaded
    assert first.one("span", "cost").text() == "$0.004"
    assert field_of(first, "prompt").text() == "a <i>cat</i>"
    assert field_of(first, "photo").one("img").attrs["src"] == "https://in.example/p.jpg"
    assert field_of(first, "ref").text() == "javascript:alert(1)"
    assert field_of(first, "ref").all("a") == []
    assert field_of(first, "clip").one("a").attrs["href"] == "https://in.example/c.mp4"
    assert field_of(first, "note").text() == "see https://x.example"
    err = second.one("div", "err")
    assert err.one("span", "tier").text() == "retry now"
    assert err.one("div", "err-code").text() == "SERVER_ERRORretry now"
    assert second.one("div", "empty").text() == "failed"


@pytest.mark.parametrize(
    "value",
    ["javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)",
     "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:x",
     "file:///etc/passwd", "//evil.example/x.png", "https://a.example/x y.png",
     "https://a.example/\nx.png", "http:/x", ""],
)  # fmt: skip
def test_no_other_url_reaches_src_or_href(tmp_path: Path, value: str) -> None:
    assert web_url(value) is None
    assert relative_href(value, str(tmp_path)) is None
    page = tmp_path / "g.html"
    rows = [row(0, outputs=[Output("image", "imageUrl", value), Output("d", "documentUrl", value)],
                cells=["r0", "p", value])]  # fmt: skip
    write_reports([page], rows, COLUMNS)
    doc = parse(page)
    assert_safe_page(doc)
    card = cards(doc)[0]
    assert [n for n in card.walk() if "src" in n.attrs or "href" in n.attrs] == []


def test_a_local_file_named_like_a_url_is_linked_as_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "javascript:alert(1)").write_bytes(b"x")
    assert relative_href("javascript:alert(1)", str(tmp_path)) == "javascript%3Aalert%281%29"


def test_long_texts_are_clipped_on_the_card(tmp_path: Path) -> None:
    page = tmp_path / "g.html"
    write_reports([page], [row(0, cells=["r0", "ü" * 10_000, None])], COLUMNS)
    prompt = field_of(cards(parse(page))[0], "prompt")
    assert prompt.text() == "ü" * 4000 + " … 6,000 more characters"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.text(max_size=40),
    row_id=st.text(min_size=1, max_size=40),
    prompt=st.text(min_size=1, max_size=300),
    message=st.text(min_size=1, max_size=200),
    url=st.text(max_size=80) | st.text(max_size=40).map(lambda s: "https://m.example/" + s),
    tier=st.text(min_size=1, max_size=20),
)
def test_any_text_shows_as_text_and_never_as_markup(
    batch: str, row_id: str, prompt: str, message: str, url: str, tier: str
) -> None:
    assume(prompt != row_id)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "g.html"
        out = HtmlReport(page, ["id", "prompt", "ref:imageUrl"], batch=batch)
        base: dict[str, Any] = {
            "id": row_id, "prompt": prompt, "ref:imageUrl": url, "row_id": row_id,
            "technique_id": tier, "status": "completed", "charged_cost": 0.1,
            "cost_status": "final", "error_code": None, "error_message": None,
            "created_at": None, "started_at": None, "completed_at": None, "downloads": [],
            "outputs": [{"output_id": tier, "type": "imageUrl", "url": url},
                        {"output_id": "t", "type": "text", "url": message}],
        }  # fmt: skip
        out.add(base)
        out.add({**base, "status": "failed", "error_code": tier, "error_tier": tier,
                 "error_message": message, "outputs": []})  # fmt: skip
        out.close()
        doc = parse(page)
    assert_safe_page(doc)
    assert doc.one("h1").text() == (batch or "batchrun report")
    done, fail = cards(doc)
    for card in (done, fail):
        assert card.one("span", "rid").text() == row_id
        assert field_of(card, "prompt").text() == prompt
    assert done.one("div", "media").one("p", "txt").text() == message
    assert fail.one("p", "err-msg").text() == message
    assert fail.one("span", "tier").text() == tier.replace("_", " ")
    thumbs = done.one("div", "media").all("img")
    if web_url(url):
        assert [i.attrs["src"] for i in thumbs] == [url]
    else:
        plain = done.one("div", "media").one("p", "plain").text()
        assert thumbs == [] and plain == (url or f"{tier}: no address")


def test_jinja_is_imported_only_to_write_a_gallery(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from batchrun.report import write_reports\n"
        f"write_reports([Path({str(tmp_path / 'r.csv')!r})], [], ['id'])\n"
        "assert 'jinja2' not in sys.modules\n"
        f"write_reports([Path({str(tmp_path / 'r.html')!r})], [], ['id'])\n"
        "assert 'jinja2' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- in a real browser --------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]  # fmt: skip
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str:
    """Debian's chromium (`make install` puts it there), or BATCHRUN_CHROMIUM. Without one the
    test fails in CI, where a missing browser is a broken set-up, and is skipped elsewhere."""
    found = os.environ.get("BATCHRUN_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None
    )
    problem = None
    if not found:
        problem = f"no Chromium found (looked for {', '.join(BROWSERS)} on PATH)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed in this environment"
    if problem:
        message = f"{problem}: run `make install` (as root it installs Debian's chromium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser test cannot run in CI: {message}", pytrace=False)
        pytest.skip(message)
    assert found is not None
    return found


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serves a folder on 127.0.0.1, as a media host would."""
    root = tmp_path / "host"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


PALETTE = [((255, 140, 66), (120, 40, 160)), ((40, 180, 200), (20, 40, 120)),
           ((250, 210, 60), (220, 70, 60)), ((90, 200, 120), (20, 90, 80))]  # fmt: skip
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold?</b>'


def browser_batch(tmp_path: Path, host: str, host_dir: Path) -> tuple[Path, list[ReportRow]]:
    """Two rows with downloaded images, two with images on the host, one failed, one rejected,
    one whose prompt tries to inject markup, one pending."""
    files = tmp_path / "files"
    files.mkdir()
    rows = []
    for i in range(2):
        name = files / f"r{i}__image.png"
        name.write_bytes(png(96, 96, *PALETTE[i]))
        rows.append(row(i, cells=[f"r{i}", f"A fox in the snow, take {i}", None],
                        downloads=[Download(f"r{i}", "image", "u", str(name), 1, "s")]))  # fmt: skip
    for i in (2, 3):
        (host_dir / f"{i}.png").write_bytes(png(96, 96, *PALETTE[i]))
        rows.append(row(i, cells=[f"r{i}", f"An owl on a lantern, take {i}", f"{host}/{i}.png"],
                        outputs=[Output("image", "imageUrl", f"{host}/{i}.png")]))  # fmt: skip
    rows.append(failed(4, "GPU provider went away <again>", cells=["r4", "A city at night", None]))
    rows.append(row(5, state="rejected", run_id=None, run_status=None, charged_cost=None,
                    cost_final=False, outputs=[], error_code="invalid_row",
                    error_message="prompt: empty", cells=["r5", None, None]))  # fmt: skip
    rows.append(row(6, cells=["r6", XSS, None], outputs=[Output("cap", "text", XSS)]))
    rows.append(row(7, state="submitted", run_status="running", charged_cost=None, outputs=[],
                    cost_final=False, completed_at=None))  # fmt: skip
    page = tmp_path / "out" / "gallery.html"
    return page, rows


LOADED = (
    "[...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length"
)


def test_a_person_sees_the_gallery_in_chromium(
    tmp_path: Path, media_server: tuple[str, Path]
) -> None:
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    host, host_dir = media_server
    page_path, rows = browser_batch(tmp_path, host, host_dir)
    write_reports([page_path], rows, COLUMNS, batch="fox & owl <test>", wall_seconds=75)
    # Thumbnails: 2 downloaded + 2 from the host, plus the reference input thumbnails of rows 2, 3.
    expected_images = 6

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1400},
        )  # fmt: skip
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.goto(page_path.as_uri())
            page.wait_for_function(f"() => {LOADED} >= {expected_images}", timeout=15_000)
            page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)

            assert page.evaluate(f"() => {LOADED}") == expected_images
            assert page.locator("article.card").count() == len(rows)
            assert page.locator("h1").inner_text() == "fox & owl <test>"
            assert page.locator("#cost").inner_text() == "$1.25"  # five completed rows at 0.25
            assert page.locator("#wall").inner_text() == "1 min 15 s"

            failed_card = page.locator("article.card[data-status=failed]")
            assert failed_card.locator(".err-msg").inner_text() == "GPU provider went away <again>"
            assert failed_card.locator(".err-msg").is_visible()

            xss = page.locator("#card-7")
            assert xss.locator("dd .txt").inner_text() == XSS
            assert xss.locator(".media .txt").inner_text() == XSS
            assert xss.locator("b, img, script").count() == 0
            assert page.evaluate("window.__pwned") is None
            assert problems == []

            page.get_by_role("button", name="failed").click()
            assert page.locator("article.card:visible").count() == 1
            assert page.locator("#shown").inner_text() == "1"
            page.screenshot(path=str(tmp_path / "gallery-failed.png"))
            page.get_by_role("button", name="all").click()
            assert page.locator("article.card:visible").count() == len(rows)
        finally:
            context.close()
    assert (tmp_path / "gallery.png").stat().st_size > 10_000
