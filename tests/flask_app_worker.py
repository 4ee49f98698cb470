"""Another process of the Flask example (tests/test_flask_app.py), on the same database and cache.

    python -m tests.flask_app_worker

The database and the cache come from the environment (``DATABASE_URL``,
``CACHE_BACKEND``, ``CACHE_URL``), as for ``python -m examples.flask_app``.
It reads ``/posts``, then writes a post through ``POST /posts``; the last
line of stdout is a JSON report: the statements the read sent, its total,
and the write's status.
"""

from __future__ import annotations

import json

from sqlalchemy import event

from examples.flask_app import create_app, db


def main() -> None:
    app = create_app()
    with app.app_context():
        engine = db.engine
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    client = app.test_client()
    page = client.get("/posts").get_json()
    read_sql = len(sent)
    created = client.post("/posts", json={"title": "from the worker", "author_id": 2})
    print(json.dumps({"read_sql": read_sql, "total": page["total"], "status": created.status_code}))


if __name__ == "__main__":
    main()
