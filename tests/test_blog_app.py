"""The blog application's own test suite, run plain and with every query cached.

Each test runs twice: on a plain ``sessionmaker``, and with
``cache_all(Session)`` (every ORM SELECT cached, invalidated automatically).
The tests know nothing about caching: they write through the application
and read back, in fresh sessions, what a user would see. Every one must
pass both ways, and with every query cached fewer statements reach the
database (``test_every_query_cached_emits_less_sql``, which runs last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from examples import blog

MODES = ["plain", "cache_all"]
_statements: dict[tuple[str, str], int] = {}
_ran: dict[tuple[str, str], set[str]] = {}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest) -> str:
    """This suite runs on a memory region and on Redis (entries pickled)."""
    return request.param


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_session(
    mode: str, tmp_path: Path, cache_manager: CacheManager, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'blog.db'}")
    blog.Base.metadata.create_all(engine)
    with Session(engine) as session:
        blog.seed(session)
    factory = sessionmaker(bind=engine)
    if mode == "cache_all":
        caching_query.cache_all(factory, "default")
    sent = [0]

    def count(*args: Any) -> None:
        sent[0] += 1

    event.listen(engine, "before_cursor_execute", count)

    def new() -> Session:
        return factory()

    yield new
    run = (mode, request.getfixturevalue("backend"))
    _statements[run] = _statements.get(run, 0) + sent[0]
    _ran.setdefault(run, set()).add(request.node.originalname)
    engine.dispose()


def read(new_session: Callable[[], Session], fn: Callable[..., Any], *args: Any) -> Any:
    """What a fresh request reads, asked twice: the second answer must equal the first."""
    with new_session() as session:
        first = fn(session, *args)
    with new_session() as session:
        again = fn(session, *args)
    assert again == first
    return first


def write(new_session: Callable[[], Session], fn: Callable[..., Any], *args: Any) -> Any:
    with new_session() as session:
        return fn(session, *args)


def uid(new_session: Callable[[], Session], name: str) -> int:
    return read(new_session, lambda s: blog.user_named(s, name).id)  # type: ignore[no-any-return]


# -- users ------------------------------------------------------------------


def test_user_lookup_by_name(new_session):
    assert read(new_session, lambda s: blog.user_named(s, "bob").name) == "bob"


def test_unknown_user_is_none(new_session):
    assert read(new_session, lambda s: blog.user_named(s, "nobody")) is None


def test_register_then_find(new_session):
    assert read(new_session, lambda s: blog.user_named(s, "eve")) is None
    write(new_session, blog.register, "eve")
    assert read(new_session, lambda s: blog.user_named(s, "eve").name) == "eve"


def test_rename_user(new_session):
    bob = uid(new_session, "bob")
    assert read(new_session, lambda s: blog.user_by_id(s, bob).name) == "bob"
    write(new_session, blog.rename_user, bob, "robert")
    assert read(new_session, lambda s: blog.user_by_id(s, bob).name) == "robert"
    assert read(new_session, lambda s: blog.user_named(s, "bob")) is None


def test_user_count_after_register(new_session):
    assert read(new_session, blog.counts)["users"] == 4
    write(new_session, blog.register, "fay")
    assert read(new_session, blog.counts)["users"] == 5


def test_bulk_import_users(new_session):
    assert read(new_session, blog.counts)["users"] == 4
    write(new_session, blog.import_users, ["u1", "u2", "u3"])
    assert read(new_session, blog.counts)["users"] == 7
    assert read(new_session, lambda s: blog.user_named(s, "u2").name) == "u2"


def test_admins_listed(new_session):
    assert read(new_session, lambda s: [a.name for a in blog.admins(s)]) == ["ann"]


def test_register_admin(new_session):
    write(new_session, blog.register, "gil", True, 5)
    assert read(new_session, lambda s: [(a.name, a.level) for a in blog.admins(s)]) == [
        ("ann", 2),
        ("gil", 5),
    ]


def test_promote_admin_updates_subclass_table(new_session):
    ann = uid(new_session, "ann")
    assert read(new_session, lambda s: blog.user_by_id(s, ann).level) == 2
    write(new_session, blog.promote, ann, 9)
    assert read(new_session, lambda s: blog.user_by_id(s, ann).level) == 9
    assert read(new_session, lambda s: [a.level for a in blog.admins(s)]) == [9]


def test_admin_loaded_polymorphically(new_session):
    ann = uid(new_session, "ann")
    assert read(new_session, lambda s: type(blog.user_by_id(s, ann)).__name__) == "Admin"


# -- follows (a self-referential many-to-many) ------------------------------


def test_followers(new_session):
    bob = uid(new_session, "bob")
    assert read(new_session, blog.follower_names, bob) == ["cat", "dan"]


def test_follow_adds_follower(new_session):
    ann, cat = uid(new_session, "ann"), uid(new_session, "cat")
    assert read(new_session, blog.follower_names, cat) == ["dan"]
    write(new_session, blog.follow_user, ann, cat)
    assert read(new_session, blog.follower_names, cat) == ["ann", "dan"]


def test_unfollow_removes_follower(new_session):
    bob, dan = uid(new_session, "bob"), uid(new_session, "dan")
    assert read(new_session, blog.follower_names, bob) == ["cat", "dan"]
    write(new_session, blog.unfollow_user, dan, bob)
    assert read(new_session, blog.follower_names, bob) == ["cat"]


def test_following_count(new_session):
    dan = uid(new_session, "dan")
    assert read(new_session, blog.following_count, dan) == 2
    write(new_session, blog.follow_user, dan, uid(new_session, "ann"))
    assert read(new_session, blog.following_count, dan) == 3


def test_rename_shows_in_follower_lists(new_session):
    bob, cat = uid(new_session, "bob"), uid(new_session, "cat")
    assert read(new_session, blog.follower_names, bob) == ["cat", "dan"]
    write(new_session, blog.rename_user, cat, "kit")
    assert read(new_session, blog.follower_names, bob) == ["kit", "dan"]


# -- posts ------------------------------------------------------------------


def test_post_titles(new_session):
    bob = uid(new_session, "bob")
    assert read(new_session, blog.post_titles, bob) == ["Bob on cheese", "Bob on bread"]


def test_write_post_appears(new_session):
    cat = uid(new_session, "cat")
    assert read(new_session, blog.post_titles, cat) == ["Cat naps"]
    write(new_session, blog.write_post, cat, "Cat hunts")
    assert read(new_session, blog.post_titles, cat) == ["Cat naps", "Cat hunts"]


def test_edit_post(new_session):
    cat = uid(new_session, "cat")
    post = read(
        new_session,
        lambda s: s.scalars(select(blog.Post.id).where(blog.Post.author_id == cat)).one(),
    )
    write(new_session, blog.edit_post, post, "Cat sleeps")
    assert read(new_session, blog.post_titles, cat) == ["Cat sleeps"]


def test_delete_post(new_session):
    bob = uid(new_session, "bob")
    first = read(new_session, lambda s: blog.user_by_id(s, bob).posts[0].id)
    write(new_session, blog.delete_post, first)
    assert read(new_session, blog.post_titles, bob) == ["Bob on bread"]
    assert read(new_session, blog.counts)["posts"] == 3


def test_announcements_single_table(new_session):
    assert read(new_session, blog.announcements) == ["Welcome"]
    write(new_session, blog.write_post, uid(new_session, "ann"), "Rules", "", (), True)
    assert read(new_session, blog.announcements) == ["Welcome", "Rules"]


def test_plain_post_is_not_an_announcement(new_session):
    write(new_session, blog.write_post, uid(new_session, "dan"), "Dan's first")
    assert read(new_session, blog.announcements) == ["Welcome"]


def test_search(new_session):
    assert read(new_session, blog.search, "Bob") == ["Bob on cheese", "Bob on bread"]
    write(new_session, blog.write_post, uid(new_session, "dan"), "Bob is great")
    assert read(new_session, blog.search, "Bob") == [
        "Bob on cheese",
        "Bob on bread",
        "Bob is great",
    ]


def test_textual_retitle(new_session):
    bob = uid(new_session, "bob")
    assert read(new_session, blog.post_titles, bob) == ["Bob on cheese", "Bob on bread"]
    write(new_session, blog.retitle_all, bob, "Re: ")
    assert read(new_session, blog.post_titles, bob) == ["Re: Bob on cheese", "Re: Bob on bread"]


def test_top_authors_column_property(new_session):
    assert read(new_session, blog.top_authors) == [("bob", 2), ("ann", 1), ("cat", 1)]
    dan = uid(new_session, "dan")
    for title in ("a", "b", "c"):
        write(new_session, blog.write_post, dan, title)
    assert read(new_session, blog.top_authors) == [("dan", 3), ("bob", 2), ("ann", 1)]


def test_post_count_on_user(new_session):
    cat = uid(new_session, "cat")
    assert read(new_session, lambda s: blog.user_by_id(s, cat).post_count) == 1
    write(new_session, blog.write_post, cat, "more")
    assert read(new_session, lambda s: blog.user_by_id(s, cat).post_count) == 2


# -- feed: pagination and counts --------------------------------------------


def test_feed_first_page(new_session):
    dan = uid(new_session, "dan")
    assert read(new_session, blog.feed, dan) == (["Cat naps", "Bob on bread", "Bob on cheese"], 3)


def test_feed_second_page_empty(new_session):
    dan = uid(new_session, "dan")
    assert read(new_session, blog.feed, dan, 2) == ([], 3)


def test_feed_grows_with_new_post(new_session):
    dan, bob = uid(new_session, "dan"), uid(new_session, "bob")
    assert read(new_session, blog.feed, dan)[1] == 3
    write(new_session, blog.write_post, bob, "Bob on butter")
    assert read(new_session, blog.feed, dan) == (["Bob on butter", "Cat naps", "Bob on bread"], 4)
    assert read(new_session, blog.feed, dan, 2) == (["Bob on cheese"], 4)


def test_feed_follows_follow(new_session):
    dan, ann = uid(new_session, "dan"), uid(new_session, "ann")
    assert read(new_session, blog.feed, dan)[1] == 3
    write(new_session, blog.follow_user, dan, ann)
    assert read(new_session, blog.feed, dan, 1, 10)[1] == 4


def test_feed_after_unfollow(new_session):
    dan, cat = uid(new_session, "dan"), uid(new_session, "cat")
    write(new_session, blog.unfollow_user, dan, cat)
    assert read(new_session, blog.feed, dan) == (["Bob on bread", "Bob on cheese"], 2)


def test_feed_after_delete(new_session):
    dan, cat = uid(new_session, "dan"), uid(new_session, "cat")
    assert read(new_session, blog.feed, dan)[1] == 3
    naps = read(new_session, lambda s: blog.user_by_id(s, cat).posts[0].id)
    write(new_session, blog.delete_post, naps)
    assert read(new_session, blog.feed, dan) == (["Bob on bread", "Bob on cheese"], 2)


# -- tags (a many-to-many) ---------------------------------------------------


def test_posts_tagged(new_session):
    assert read(new_session, blog.posts_tagged, "food") == ["Bob on cheese", "Bob on bread"]


def test_tag_a_post(new_session):
    cat = uid(new_session, "cat")
    naps = read(new_session, lambda s: blog.user_by_id(s, cat).posts[0].id)
    assert read(new_session, blog.posts_tagged, "food") == ["Bob on cheese", "Bob on bread"]
    write(new_session, blog.add_tag, naps, "food")
    assert read(new_session, blog.posts_tagged, "food") == [
        "Bob on cheese",
        "Bob on bread",
        "Cat naps",
    ]
    assert read(new_session, blog.tag_names, naps) == ["food", "pets"]


def test_rename_tag_bulk(new_session):
    assert read(new_session, blog.posts_tagged, "baking") == ["Bob on bread"]
    write(new_session, blog.rename_tag, "baking", "bread")
    assert read(new_session, blog.posts_tagged, "baking") == []
    assert read(new_session, blog.posts_tagged, "bread") == ["Bob on bread"]


def test_tag_names_of_post(new_session):
    bob = uid(new_session, "bob")
    bread = read(new_session, lambda s: blog.user_by_id(s, bob).posts[1].id)
    assert read(new_session, blog.tag_names, bread) == ["baking", "food"]


def test_new_post_with_new_tag(new_session):
    write(new_session, blog.write_post, uid(new_session, "ann"), "Release", "", ["news", "release"])
    assert read(new_session, blog.posts_tagged, "release") == ["Release"]
    assert read(new_session, blog.posts_tagged, "news") == ["Welcome", "Release"]


# -- comments -----------------------------------------------------------------


def welcome(new_session: Callable[[], Session]) -> int:
    return read(  # type: ignore[no-any-return]
        new_session,
        lambda s: s.scalars(select(blog.Post.id).where(blog.Post.title == "Welcome")).one(),
    )


def comment_by(new_session: Callable[[], Session], name: str) -> int:
    author = uid(new_session, name)
    return read(  # type: ignore[no-any-return]
        new_session,
        lambda s: s.scalars(select(blog.Comment.id).where(blog.Comment.author_id == author)).one(),
    )


def test_comments_with_authors(new_session):
    assert read(new_session, blog.comments_with_authors, welcome(new_session)) == [
        ("thanks", "bob"),
        ("hi all", "cat"),
    ]


def test_comment_appears(new_session):
    post = welcome(new_session)
    write(new_session, blog.comment, post, uid(new_session, "dan"), "late")
    assert read(new_session, blog.comments_with_authors, post)[-1] == ("late", "dan")


def test_comment_counts(new_session):
    assert read(new_session, blog.comment_counts)["Welcome"] == 2
    bob = uid(new_session, "bob")
    cheese = read(new_session, lambda s: blog.user_by_id(s, bob).posts[0].id)
    write(new_session, blog.comment, cheese, bob, "self reply")
    counts = read(new_session, blog.comment_counts)
    assert (counts["Welcome"], counts["Bob on cheese"]) == (2, 1)


def test_comment_count_total(new_session):
    assert read(new_session, blog.counts)["comments"] == 2
    write(new_session, blog.comment, welcome(new_session), uid(new_session, "ann"), "admin here")
    assert read(new_session, blog.counts)["comments"] == 3


def test_posts_with_comments_selectin(new_session):
    ann = uid(new_session, "ann")
    assert read(new_session, blog.posts_with_comments, ann) == [("Welcome", ["thanks", "hi all"])]
    write(new_session, blog.comment, welcome(new_session), ann, "pinned soon")
    assert read(new_session, blog.posts_with_comments, ann) == [
        ("Welcome", ["thanks", "hi all", "pinned soon"])
    ]


def test_rename_shows_in_comment_authors(new_session):
    post = welcome(new_session)
    assert read(new_session, blog.comments_with_authors, post)[0] == ("thanks", "bob")
    write(new_session, blog.rename_user, uid(new_session, "bob"), "bobby")
    assert read(new_session, blog.comments_with_authors, post)[0] == ("thanks", "bobby")


def test_pin_comment_post_update(new_session):
    post = welcome(new_session)
    assert read(new_session, blog.pinned_body, post) is None
    second = read(
        new_session, lambda s: blog.user_by_id(s, uid(new_session, "ann")).posts[0].comments[1].id
    )
    write(new_session, blog.pin, post, second)
    assert read(new_session, blog.pinned_body, post) == "hi all"
    write(new_session, blog.pin, post, None)
    assert read(new_session, blog.pinned_body, post) is None


def test_purge_comments_core_on_connection(new_session):
    post = welcome(new_session)
    cat = uid(new_session, "cat")
    write(new_session, blog.pin, post, comment_by(new_session, "cat"))
    assert read(new_session, blog.pinned_body, post) == "hi all"
    assert write(new_session, blog.purge_comments, cat) == 1
    assert read(new_session, blog.comments_with_authors, post) == [("thanks", "bob")]
    assert read(new_session, blog.pinned_body, post) is None


# -- sessions that read their own writes ----------------------------------------


def test_own_uncommitted_write_is_seen(new_session):
    with new_session() as session:
        assert blog.user_named(session, "bob") is not None
        session.add(blog.User(name="hal"))
        session.flush()
        assert blog.counts(session)["users"] == 5
        session.rollback()
    assert read(new_session, blog.counts)["users"] == 4


def test_rolled_back_write_not_seen(new_session):
    bob = uid(new_session, "bob")
    with new_session() as session:
        session.get(blog.User, bob).name = "nope"
        session.flush()
        session.rollback()
    assert read(new_session, lambda s: blog.user_by_id(s, bob).name) == "bob"


def test_textual_read_through_session(new_session):
    rows = read(
        new_session,
        lambda s: s.execute(text("SELECT name FROM user_account ORDER BY id")).scalars().all(),
    )
    assert rows == ["ann", "bob", "cat", "dan"]
    write(new_session, blog.register, "ivy")
    assert (
        read(
            new_session,
            lambda s: s.execute(text("SELECT name FROM user_account ORDER BY id")).scalars().all(),
        )[-1]
        == "ivy"
    )


@pytest.mark.parametrize("region", ["memory", "redis"])
def test_every_query_cached_emits_less_sql(region):
    """Runs last: the same tests, with every query cached, sent fewer statements."""
    plain, cached = ("plain", region), ("cache_all", region)
    if len(_ran.get(plain, ())) < 40 or _ran.get(plain) != _ran.get(cached):
        pytest.skip("needs the whole module run in both modes")
    print(f"statements sent, {region}: {_statements[plain]} plain, {_statements[cached]} cached")
    assert _statements[cached] < _statements[plain] * 0.8, _statements
