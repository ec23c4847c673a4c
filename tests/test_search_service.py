"""The product-search HTTP service through FastAPI's TestClient."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the `search` extra (fastapi) is not installed")
pytest.importorskip("lancedb", reason="the `search` extra (lancedb) is not installed")

from fastapi.testclient import TestClient
from PIL import Image

from polymodal.search.service import Limits, create_app
from tests.search_fixtures import ColourImageEncoder, build_test_index


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_index(tmp_path_factory.mktemp("search"))


@pytest.fixture
def client(index_dir: Path):
    with TestClient(create_app(index_dir, background=False, limits=Limits(max_upload_bytes=50_000))) as c:
        yield c


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_health_ready_once_loaded(client: TestClient) -> None:
    res = client.get("/health")
    assert res.status_code == 200
    assert res.json()["status"] == "ready" and res.json()["count"] == 12


def test_health_not_ready_for_an_incomplete_index(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "nothing", background=False)) as c:
        res = c.get("/health")
        assert res.status_code == 503 and res.json()["status"] == "error"
        assert "no complete index version" in res.json()["detail"]
        assert c.get("/search", params={"q": "shirt"}).status_code == 503


def test_search_returns_id_score_name_list(client: TestClient) -> None:
    res = client.get("/search", params={"q": "navy blue men casual shirt", "k": 3})
    assert res.status_code == 200
    rows = res.json()
    assert isinstance(rows, list) and len(rows) == 3
    assert rows[0]["name"] == "Lee Men Navy Blue Casual Shirt"
    assert {"id", "score", "name", "gender", "baseColour", "image_url"} <= set(rows[0])
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]


def test_attribute_filters(client: TestClient) -> None:
    rows = client.get("/search", params={"q": "jeans", "k": 10, "gender": "Women"}).json()
    assert rows and all(r["gender"] == "Women" for r in rows)
    assert rows[0]["name"] == "Wrangler Women Navy Blue Jeans"
    # an empty value (the page's "any") is no filter
    assert len(client.get("/search", params={"q": "jeans", "k": 12, "gender": ""}).json()) == 12


@pytest.mark.parametrize(("params", "status", "detail"), [
    ({}, 400, "empty query"),
    ({"q": "   "}, 400, "empty query"),
    ({"q": "x" * 201}, 400, "longer than 200"),
    ({"q": "shirt", "k": 0}, 400, "k must be between"),
    ({"q": "shirt", "k": 1000}, 400, "k must be between"),
    ({"q": "shirt", "k": "ten"}, 400, "k:"),
    ({"q": "shirt", "size": "M"}, 400, "unknown parameter 'size'"),
    ({"q": "shirt", "gender": "Robots"}, 400, "unknown value 'Robots'"),
    ({"q": "shirt", "gender": "Men' OR 1=1"}, 400, "unknown value"),
])
def test_bad_requests_are_clear_4xx(client: TestClient, params: dict, status: int, detail: str) -> None:
    res = client.get("/search", params=params)
    assert res.status_code == status
    assert detail in res.json()["detail"]


def test_photos_served_and_unknown_ids_404(client: TestClient) -> None:
    url = client.get("/search", params={"q": "gold watch", "k": 1}).json()[0]["image_url"]
    res = client.get(url)
    assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
    assert client.get("/images/nope").status_code == 404


def test_image_upload_needs_an_image_tower(client: TestClient) -> None:
    res = client.post("/search", files={"image": ("a.png", _png((40, 40), (200, 30, 30)), "image/png")})
    assert res.status_code == 400 and "no image query encoder" in res.json()["detail"]
    # text through POST works without a photo
    rows = client.post("/search", data={"q": "red top", "k": "2"}).json()
    assert rows[0]["name"] == "Jealous 21 Women Red Top"


def test_image_upload_search_and_bad_images(index_dir: Path) -> None:
    app = create_app(index_dir, background=False, encoder=ColourImageEncoder(),
                     limits=Limits(max_upload_bytes=50_000))
    with TestClient(app) as c:
        rows = c.post("/search", data={"k": "12"},
                      files={"image": ("a.png", _png((40, 40), (205, 25, 30)), "image/png")}).json()
        assert rows[0]["baseColour"] == "Red"
        cases = [
            (b"", 400, "empty image upload"),
            (b"not an image at all", 400, "not a readable image"),
            (_png((8, 8), (0, 0, 0)), 400, "below 16 px"),
            (b"\x89PNG" + b"0" * 60_000, 413, "over"),
        ]
        for data, status, detail in cases:
            res = c.post("/search", files={"image": ("x.png", data, "image/png")})
            assert res.status_code == status, (detail, res.json())
            assert detail in res.json()["detail"]
        # a truncated JPEG
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="JPEG")
        res = c.post("/search", files={"image": ("t.jpg", buf.getvalue()[:200], "image/jpeg")})
        assert res.status_code == 400 and "not a readable image" in res.json()["detail"]


def test_page_is_served(client: TestClient) -> None:
    res = client.get("/")
    assert res.status_code == 200 and "search-form" in res.text
    assert client.get("/filters").json()["gender"] == ["Men", "Unisex", "Women"]
