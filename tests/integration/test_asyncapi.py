"""The committed AsyncAPI document passes the reference parser (npm `@asyncapi/parser`,
pinned in package.json / package-lock.json), and the parser does reject a broken one.

Needs Node.js >= 18 with npm. `npm ci` runs here only when node_modules lacks the parser
(a fresh clone); `make test` can run it beforehand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "deploy" / "asyncapi" / "asyncapi.json"
VALIDATOR = ROOT / "deploy" / "asyncapi" / "validate.mjs"
NPM_CI = ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"]


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js (node and npm, >= 18) is needed to validate the AsyncAPI "
                    "document with @asyncapi/parser: install it (e.g. apt-get install nodejs "
                    "npm) and run `npm ci --no-audit --no-fund --ignore-scripts` at the repo "
                    "root")
    if not (ROOT / "node_modules" / "@asyncapi" / "parser" / "package.json").exists():
        done = subprocess.run([npm, *NPM_CI[1:]], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{' '.join(NPM_CI)} failed:\n{done.stdout}\n{done.stderr}"
    return node


def parse(node: str, path: Path) -> tuple[int, dict]:
    done = subprocess.run([node, str(VALIDATOR), str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"validator failed: {done.stdout}\n{done.stderr}") from None


def test_committed_asyncapi_document_is_valid(node: str) -> None:
    code, result = parse(node, DOCUMENT)
    assert code == 0 and result["valid"], result
    assert result["diagnostics"] == [], "no errors, warnings or hints expected"


def test_parser_rejects_a_broken_document(node: str, tmp_path: Path) -> None:
    doc = json.loads(DOCUMENT.read_text())
    doc["operations"]["aggregatorSendsChanges"]["channel"] = {"$ref": "#/channels/nowhere"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    code, result = parse(node, broken)
    assert code == 1 and not result["valid"]
    assert any("nowhere" in d["message"] for d in result["diagnostics"])
