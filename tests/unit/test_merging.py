"""The merge algorithm on local folders, with resolvers replaced by functions."""

import os
import stat

import pytest

from orchestrator.errors import ExecutorError
from orchestrator.merging import Layer, MergeConflict, Merger, ResolverSpec


def write(root, files):
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def layers(tmp_path, *contents):
    result = []
    for index, files in enumerate(contents):
        root = tmp_path / f"layer{index}"
        root.mkdir()
        write(root, files)
        result.append(Layer(root, f"proc/{index}"))
    return result


def no_resolver(resolver, body):
    raise AssertionError("no resolver should be called")


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_disjoint_files_copied(tmp_path):
    given = layers(tmp_path, {"a.txt": "A", "d/b.txt": "B"}, {"c.txt": "C"})
    result = Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert (tmp_path / "out/a.txt").read_text() == "A"
    assert (tmp_path / "out/d/b.txt").read_text() == "B"
    assert (tmp_path / "out/c.txt").read_text() == "C"
    assert result.files == 3
    assert result.conflicts == []


def test_last_writer_wins_without_resolver(tmp_path):
    given = layers(tmp_path, {"x.txt": "first"}, {"x.txt": "second"}, {"y": "y"})
    result = Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert (tmp_path / "out/x.txt").read_text() == "second"
    assert result.conflicts == [{"path": "x.txt", "layers": [0, 1], "resolver": None}]


def test_modes_and_empty_folders_kept(tmp_path):
    given = layers(tmp_path, {"run.sh": "#!/bin/sh\n"})
    os.chmod(given[0].directory / "run.sh", 0o755)
    (given[0].directory / "empty").mkdir()
    os.chmod(given[0].directory / "empty", 0o700)
    Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert mode(tmp_path / "out/run.sh") == 0o755
    assert (tmp_path / "out/empty").is_dir()
    assert mode(tmp_path / "out/empty") == 0o700


def test_one_matching_resolver_decides(tmp_path):
    given = layers(
        tmp_path,
        {"cfg/a.json": "[1]", "other.txt": "o1"},
        {"cfg/a.json": "[2]", "other.txt": "o2"},
    )
    os.chmod(given[1].directory / "cfg/a.json", 0o640)
    calls = []

    def resolve(resolver, body):
        calls.append((resolver.id, body))
        joined = "+".join(file["content"] for file in body["files"])
        return {"path": body["files"][0]["path"], "content": joined}

    resolvers = [ResolverSpec("json", ["**/*.json"], {"k": 1})]
    result = Merger(resolve).merge(given, tmp_path / "out", resolvers)
    assert (tmp_path / "out/cfg/a.json").read_text() == "[1]+[2]"
    assert mode(tmp_path / "out/cfg/a.json") == 0o640
    assert (tmp_path / "out/other.txt").read_text() == "o2"
    assert len(calls) == 1
    resolver_id, body = calls[0]
    assert resolver_id == "json"
    assert body["config"] == {"k": 1}
    assert body["files"] == [
        {
            "path": "cfg/a.json",
            "content": "[1]",
            "origin": {"template": "proc/0", "layer": 0},
        },
        {
            "path": "cfg/a.json",
            "content": "[2]",
            "origin": {"template": "proc/1", "layer": 1},
        },
    ]
    assert {
        "path": "cfg/a.json",
        "layers": [0, 1],
        "resolver": "json",
    } in result.conflicts


def test_globstar_matches_top_level_and_deep(tmp_path):
    spec = ResolverSpec("r", ["**/*.json"])
    assert spec.matches("a.json")
    assert spec.matches("x/y/z.json")
    assert not spec.matches("a.jsonx")
    assert ResolverSpec("r", ["**/package.json"]).matches("package.json")
    assert ResolverSpec("r", ["*.md"]).matches("README.md")
    assert not ResolverSpec("r", ["*.md"]).matches("docs/README.md")


def test_several_matching_resolvers_fail(tmp_path):
    given = layers(
        tmp_path, {"p.json": "1", "q.json": "1"}, {"p.json": "2", "q.json": "2"}
    )
    resolvers = [
        ResolverSpec("one", ["*.json"]),
        ResolverSpec("two", ["**/p.json", "q.json"]),
    ]
    with pytest.raises(MergeConflict) as caught:
        Merger(no_resolver).merge(given, tmp_path / "out", resolvers)
    assert caught.value.errors[0].startswith(
        "p.json: several resolvers match (one, two)"
    )
    assert caught.value.errors[1].startswith(
        "q.json: several resolvers match (one, two)"
    )
    assert not (tmp_path / "out").exists()


def test_resolver_answering_other_path_fails(tmp_path):
    given = layers(tmp_path, {"a.json": "1"}, {"a.json": "2"})

    def resolve(resolver, body):
        return {"path": "b.json", "content": "x"}

    with pytest.raises(ExecutorError) as caught:
        Merger(resolve).merge(given, tmp_path / "out", [ResolverSpec("r", ["*.json"])])
    assert "a.json" in caught.value.message
    assert "'b.json'" in caught.value.message


def test_binary_conflict_keeps_last_version(tmp_path):
    first = bytes(range(256))
    second = b"\xff\xfe\x00binary"
    given = layers(tmp_path, {"img.json": first}, {"img.json": second})
    result = Merger(no_resolver).merge(
        given, tmp_path / "out", [ResolverSpec("r", ["*.json"])]
    )
    assert (tmp_path / "out/img.json").read_bytes() == second
    assert result.warnings and "img.json" in result.warnings[0]
    assert result.conflicts[0]["resolver"] is None


def test_file_replaced_by_folder_and_back(tmp_path):
    given = layers(
        tmp_path, {"a": "file", "b/c.txt": "c"}, {"a/inner.txt": "i", "b": "now a file"}
    )
    Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert (tmp_path / "out/a/inner.txt").read_text() == "i"
    assert (tmp_path / "out/b").read_text() == "now a file"


def test_symlink_copied_as_link(tmp_path):
    given = layers(tmp_path, {"target.txt": "t"})
    (given[0].directory / "link").symlink_to("target.txt")
    Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert os.readlink(tmp_path / "out/link") == "target.txt"


def test_existing_output_replaced(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/stale.txt").write_text("old")
    given = layers(tmp_path, {"new.txt": "n"})
    Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert not (tmp_path / "out/stale.txt").exists()
    assert (tmp_path / "out/new.txt").exists()


def test_single_writer_files_moved(tmp_path):
    given = layers(tmp_path, {"only.txt": "o", "both.txt": "1"}, {"both.txt": "2"})
    inode = (given[0].directory / "only.txt").stat().st_ino
    Merger(no_resolver).merge(given, tmp_path / "out", [])
    assert (tmp_path / "out/only.txt").stat().st_ino == inode
    assert not (given[0].directory / "only.txt").exists()
    # Conflicting versions are copied, so resolvers can still read each one.
    assert (given[0].directory / "both.txt").read_text() == "1"
    assert (given[1].directory / "both.txt").read_text() == "2"


def test_link_conflict_warning_names_the_link(tmp_path):
    given = layers(tmp_path, {"notes.txt": "text"}, {"target.txt": "t"})
    (given[1].directory / "notes.txt").symlink_to("target.txt")
    result = Merger(no_resolver).merge(
        given, tmp_path / "out", [ResolverSpec("r", ["*.txt"])]
    )
    assert (tmp_path / "out/notes.txt").is_symlink()
    assert result.warnings == [
        "notes.txt: a symbolic link in some version, so resolver r was skipped "
        "and the last version was kept"
    ]
