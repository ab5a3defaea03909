"""keepalived.conf read as keepalived reads it (haguard.core.kaconf, adapters.kafiles)."""

from __future__ import annotations

from pathlib import Path

import pytest

from haguard.adapters.kafiles import read_keepalived_conf
from haguard.core.kaconf import KeepalivedConfError, Stmt, lines, parse
from haguard.errors import ExitStatus


def tree(text: str) -> tuple[Stmt, ...]:
    return parse(lines(text, "k.conf"))


def shape(stmts: tuple[Stmt, ...] | None) -> list[object]:
    """Keywords, arguments and blocks, without positions."""
    return [((s.keyword, *s.args), shape(s.block)) if s.block is not None
            else (s.keyword, *s.args) for s in stmts or ()]


def test_a_block_on_one_line_reads_like_the_same_block_on_many() -> None:
    one = tree("real_server 192.0.2.21 80 {\n weight 2\n TCP_CHECK { connect_timeout 3 } }\n")
    many = tree("real_server 192.0.2.21 80\n{\n  weight 2\n  TCP_CHECK {\n"
                "    connect_timeout 3\n  }\n}\n")
    assert shape(one) == shape(many) == [
        (("real_server", "192.0.2.21", "80"),
         [("weight", "2"), (("TCP_CHECK",), [("connect_timeout", "3")])])]


def test_comments_start_at_bang_or_hash_outside_quotes_and_escaped_ones_are_text() -> None:
    stmts = tree('! a comment line\n'
                 'notify_master "/usr/local/bin/tell #ops" # trailing\n'
                 'auth_pass ab\\#cd ! another\n')
    assert shape(stmts) == [("notify_master", "/usr/local/bin/tell #ops"),
                            ("auth_pass", "ab#cd")]


def test_a_trailing_backslash_continues_the_line_and_keeps_its_number() -> None:
    stmts = tree("\n\nvirtual_server \\\n  192.0.2.100 80 {\n}\n")
    assert shape(stmts) == [(("virtual_server", "192.0.2.100", "80"), [])]
    assert stmts[0].line == 3


def test_a_quoted_string_is_one_word_without_its_quotes() -> None:
    assert shape(tree('misc_path "/usr/local/bin/check --port 80"\n')) == [
        ("misc_path", "/usr/local/bin/check --port 80")]


def test_value_blocks_list_every_word() -> None:
    (group,) = tree("vrrp_sync_group G { group { VI_1 VI_2\n VI_3 } }\n")
    assert group.children("group")[0].words() == ["VI_1", "VI_2", "VI_3"]


@pytest.mark.parametrize("text, message", [
    ("vrrp_instance VI_1 {\n  state MASTER\n", "k.conf:1: the block of 'vrrp_instance' "
     "opened here is not closed"),
    ("global_defs {\n}\n}\n", "k.conf:3: '}' closes no block"),
    ("{\n}\n", "k.conf:1: '{' without a keyword"),
    ('notify "/bin/true\n', "k.conf:1: a double quote is not closed"),
])
def test_a_broken_file_is_refused_at_its_line(text: str, message: str) -> None:
    with pytest.raises(KeepalivedConfError) as info:
        tree(text)
    assert str(info.value).startswith(message)
    assert info.value.exit_code == ExitStatus.BAD_INPUT


def test_includes_are_expanded_in_place_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("vrrp_instance B {\n}\n")
    (tmp_path / "conf.d" / "a.conf").write_text("vrrp_instance A {\n  include ../vips.inc\n}\n")
    (tmp_path / "vips.inc").write_text("virtual_ipaddress {\n  192.0.2.100/32\n}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text("global_defs {\n  router_id lb1\n}\ninclude conf.d/*.conf\n")
    stmts = read_keepalived_conf(str(main))
    assert shape(stmts) == [
        (("global_defs",), [("router_id", "lb1")]),
        (("vrrp_instance", "A"), [(("virtual_ipaddress",), [("192.0.2.100/32",)])]),
        (("vrrp_instance", "B"), [])]
    vips = stmts[1].children("virtual_ipaddress")[0]
    assert vips.file.endswith("vips.inc") and vips.line == 1


def test_an_include_that_matches_nothing_stays_for_migrate_to_report(tmp_path: Path) -> None:
    main = tmp_path / "keepalived.conf"
    main.write_text("include /nonexistent-haguard-test/*.conf\n")
    (stmt,) = read_keepalived_conf(str(main))
    assert (stmt.keyword, stmt.args, stmt.line) == (
        "include", ("/nonexistent-haguard-test/*.conf",), 1)


def test_an_include_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    with pytest.raises(KeepalivedConfError, match="includes itself"):
        read_keepalived_conf(str(tmp_path / "a.conf"))
