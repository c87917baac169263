"""The alliance page's static files: what the aggregator serves, and that nothing comes
from elsewhere (the page works offline). The page itself runs in a real browser in
tests/integration/test_page.py."""

import json
import re
from pathlib import Path

from services.aggregator.views import OPEN_PATHS, ROUTES, STATIC_DIR, page_paths, static_file

ROOT = Path(__file__).resolve().parents[2]


def test_static_file_serves_only_page_files_inside_the_folder(tmp_path):
    (tmp_path / "vendor").mkdir()
    (tmp_path / "index.html").write_text("<p>")
    (tmp_path / "vendor" / "lib.js").write_text("x")
    (tmp_path / "notes.txt").write_text("secret")
    (tmp_path.parent / "outside.js").write_text("x")
    assert static_file("index.html", tmp_path) == (tmp_path / "index.html").resolve()
    assert static_file("vendor/lib.js", tmp_path) is not None
    for refused in ("../outside.js", "vendor/../../outside.js", "vendor", "notes.txt",
                    "missing.js", "/etc/passwd"):
        assert static_file(refused, tmp_path) is None, refused
    (tmp_path / "link.js").symlink_to(tmp_path.parent / "outside.js")
    assert static_file("link.js", tmp_path) is None


def test_page_paths_are_open_and_data_paths_are_not(tmp_path):
    (tmp_path / "vendor").mkdir()
    for name in ("index.html", "app.js", "vendor/lib.js", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert page_paths(tmp_path) == ("/", "/static/app.js", "/static/index.html",
                                    "/static/vendor/lib.js")
    assert not {"/alliances", "/graph", "/companies", "/changes/stream"} & set(
        OPEN_PATHS + page_paths())
    assert {"/", "/static/{name:.+}"} <= {path for path, _ in ROUTES}


def test_the_page_loads_nothing_from_elsewhere():
    html = (STATIC_DIR / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    assert "/static/vendor/cytoscape.min.js" in sources
    script = (STATIC_DIR / "app.js").read_text()
    assert not re.search(r"https?://(?!/)", script.replace("^https?:\\/\\/", "")), \
        "app.js must not fetch from another origin"


def test_the_graph_library_is_pinned_exactly_and_locked():
    package = json.loads((ROOT / "package.json").read_text())
    version = package["dependencies"]["cytoscape"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "pin an exact version"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/cytoscape"]["version"] == version
    assert lock["packages"][""]["dependencies"]["cytoscape"] == version


def test_radar_up_prints_the_page_url_with_the_others(tmp_path):
    from services.cli.stack import ServiceProcess

    urls = ServiceProcess("aggregator", 6066, "127.0.0.1", tmp_path / "log", {}).urls()
    assert urls["page"] == "http://127.0.0.1:6066/"
    assert list(urls)[:2] == ["page", "api"]
