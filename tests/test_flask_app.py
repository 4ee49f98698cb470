"""The Flask example (examples/flask_app/) through Flask's test client.

Every request has a session of its own (Flask-SQLAlchemy scopes
``db.session`` to the application context each request pushes), so a
second request that sends no SQL was served by the cache. The SQL counted
is what the application's engine sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from beaker.cache import CacheManager
from flask import Flask
from flask.testing import FlaskClient

from examples.flask_app import Author, create_app, db
from tests.conftest import SQLCounter

ROOT = Path(__file__).resolve().parent.parent
# the example shows Flask-SQLAlchemy's Query.get_or_404(), which calls the legacy Query.get()
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.LegacyAPIWarning")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest) -> str:
    """A memory region, and Redis (entries pickled, versions on the server)."""
    return request.param


@pytest.fixture
def app(tmp_path: Path, cache_manager: CacheManager) -> Iterator[Flask]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"}, cache_manager)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sql(app: Flask) -> Iterator[SQLCounter]:
    with app.app_context():
        counter = SQLCounter(db.engine)
    yield counter
    counter.close()


def get(client: FlaskClient, sql: SQLCounter, url: str, statements: int, status: int = 200) -> Any:
    with sql.expect(statements):
        response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def get_twice(client: FlaskClient, sql: SQLCounter, url: str, statements: int) -> Any:
    """The first request sends ``statements``; the second none, and answers the same."""
    first = get(client, sql, url, statements)
    assert get(client, sql, url, 0) == first
    return first


@pytest.mark.parametrize(
    ("url", "statements"),
    [
        ("/posts", 2),  # the page and its count
        ("/posts?page=3&per_page=4", 2),
        ("/posts/3", 1),  # db.get_or_404
        ("/posts/titled/" + quote("ada #2"), 1),  # db.one_or_404
        ("/authors/2/posts?page=2", 3),  # Author.query.get_or_404, the page, the count
        ("/authors/2/latest", 2),  # Author.query.get_or_404, first_or_404
    ],
)
def test_the_second_request_sends_no_sql(client, sql, url, statements):
    assert get_twice(client, sql, url, statements)


def test_pages_and_their_count(client, sql):
    first = get_twice(client, sql, "/posts", 2)
    assert (first["page"], first["pages"], first["total"]) == (1, 5, 24)
    assert [item["title"] for item in first["items"]] == [f"ada #{n}" for n in range(1, 6)]
    # another page, another page size: the count is the same statement
    second = get_twice(client, sql, "/posts?page=2", 1)
    assert [item["id"] for item in second["items"]] == [6, 7, 8, 9, 10]
    assert get_twice(client, sql, "/posts?per_page=10&page=3", 1)["items"][-1]["title"] == (
        "linus #8"
    )
    # Flask-SQLAlchemy's 404 past the last page, from a cached (empty) page
    get(client, sql, "/posts?page=6", 1, 404)
    get(client, sql, "/posts?page=6", 0, 404)


def test_missing_rows_are_404(app, client, sql):
    for statements in (1, 0):
        get(client, sql, "/posts/999", statements, 404)  # db.get_or_404
        get(client, sql, "/posts/titled/nothing", statements, 404)  # db.one_or_404
        get(client, sql, "/authors/99/posts", statements, 404)  # Query.get_or_404
    with app.app_context():
        author = Author(name="nobody")
        db.session.add(author)
        db.session.commit()
        author_id = author.id
    # the author and the (empty) newest post: Query.first_or_404
    get(client, sql, f"/authors/{author_id}/latest", 2, 404)
    get(client, sql, f"/authors/{author_id}/latest", 0, 404)


def test_a_post_through_a_view_refreshes_the_cached_pages(client, sql):
    for number in range(1, 6):
        get(client, sql, f"/posts?page={number}", 2 if number == 1 else 1)
    get(client, sql, "/authors/1/posts?page=2", 3)
    post_1 = get(client, sql, "/posts/1", 1)

    created = client.post("/posts", json={"title": "ada #9", "body": "new", "author_id": 1})
    assert created.status_code == 201
    assert created.get_json()["id"] == 25

    # the post table changed: every cached page and count of it runs again, once
    last = get_twice(client, sql, "/posts?page=5", 2)
    assert (last["total"], last["pages"]) == (25, 5)
    assert [item["title"] for item in last["items"]][-1] == "ada #9"
    first = get_twice(client, sql, "/posts", 1)  # its count was just cached again
    assert first["total"] == 25
    # the author's table did not change: Author.query.get_or_404 is still a hit
    own = get_twice(client, sql, "/authors/1/posts?page=2", 2)
    assert (own["total"], own["items"][-1]["title"]) == (9, "ada #9")
    assert get_twice(client, sql, "/posts/1", 1) == post_1
    assert get_twice(client, sql, "/posts/25", 1)["body"] == "new"


def test_a_rename_through_a_view(client, sql):
    before = get_twice(client, sql, "/posts", 2)
    get_twice(client, sql, "/posts/3", 1)
    renamed = client.post("/posts/3/title", json={"title": "renamed"})
    assert renamed.status_code == 200 and renamed.get_json()["title"] == "renamed"
    assert get_twice(client, sql, "/posts/3", 1)["title"] == "renamed"
    after = get_twice(client, sql, "/posts", 2)
    assert [item["title"] for item in after["items"]] == [
        "renamed" if item["id"] == 3 else item["title"] for item in before["items"]
    ]
    get(client, sql, "/posts/titled/" + quote("ada #3"), 1, 404)


def test_bad_writes(client, sql):
    assert client.post("/posts", json={"author_id": 1}).status_code == 400
    assert client.post("/posts", json={"title": "x", "author_id": 99}).status_code == 404
    assert client.post("/posts/3/title", json={}).status_code == 400
    assert client.post("/posts/999/title", json={"title": "x"}).status_code == 404
    assert get_twice(client, sql, "/posts", 2)["total"] == 24


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.server)])
def test_another_process_shares_entries_and_invalidations(
    app, client, sql, tmp_path, region_config
):
    """A second process of the application, on the same SQLite file and Redis."""
    assert get(client, sql, "/posts", 2)["total"] == 24
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "CACHE_BACKEND": "redis",
        "CACHE_URL": region_config["url"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.flask_app_worker"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # the other process read this one's entries, then committed a post
    assert report == {"read_sql": 0, "total": 24, "status": 201}
    # ... whose commit invalidated this process's entries
    page = get_twice(client, sql, "/posts?page=5", 2)
    assert (page["total"], page["items"][-1]["title"]) == (25, "from the worker")


def test_the_flask_command_finds_the_factory(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "examples.flask_app", "routes"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for route in ("blog.list_posts", "blog.show_post", "blog.create_post", "blog.author_posts"):
        assert route in done.stdout
