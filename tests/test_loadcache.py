"""The loaded-Flowfile cache: used only while the Flowfile's bytes and every
disk fact the loader relied on are unchanged; the CLI sees no difference."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from conftest import Project, kinds, shortcut_test

from flowmake.engine.graph import build_graph
from flowmake.errors import FlowfileErrors
from flowmake.load import loadcache
from flowmake.store.state import ensure_state_dir

FLOW = """\
[vars]
greeting = "hello"

[tasks.gather]
inputs = ["data/*.csv", "notes.txt"]
outputs = ["out/all.csv"]
env_inputs = ["CUTOFF"]
run = "cat {inputs} > {outputs}; echo {greeting} >> {outputs}"
"""


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> List[Path]:
    """Records every full (uncached) load."""
    calls: List[Path] = []
    import flowmake.load.flowfile as loader  # load_cached imports load_observed from there on a miss

    real = loader.load_observed

    def spy(path: Path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(loader, "load_observed", spy)
    return calls


def setup(root: Path, *, state_dir: bool = True) -> Path:
    (root / "data").mkdir()
    (root / "data" / "a.csv").write_text("1\n")
    (root / "notes.txt").write_text("n\n")
    path = root / "Flowfile.toml"
    path.write_text(FLOW)
    if state_dir:
        ensure_state_dir(root)
    return path


def load(path: Path):
    return loadcache.load_cached(path, path.parent / ".flowmake", build_graph)[0]


def test_the_graph_is_cached_beside_the_flowfile(tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    loadcache.load_cached(path, path.parent / ".flowmake", build_graph)
    flowfile, graph = loadcache.load_cached(path, path.parent / ".flowmake", lambda f: 1 / 0)  # not called on a hit
    assert len(counted) == 1
    assert graph == build_graph(flowfile)


def test_second_load_comes_from_the_cache_and_is_equal(tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    first = load(path)
    second = load(path)
    assert len(counted) == 1
    assert second == first


def test_flowfile_edit_invalidates_it(tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    load(path)
    path.write_text(FLOW.replace("cat {inputs}", "sort {inputs}"))
    assert load(path).tasks["gather"].command.startswith("sort ")
    assert len(counted) == 2


def test_var_change_invalidates_it(tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    load(path)
    path.write_text(FLOW.replace('"hello"', '"bye"'))
    assert load(path).tasks["gather"].command.endswith("echo bye >> out/all.csv")


def test_new_file_matching_a_glob_invalidates_it(tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    load(path)
    (tmp_path / "data" / "b.csv").write_text("2\n")
    assert load(path).tasks["gather"].inputs == ("data/a.csv", "data/b.csv", "notes.txt")
    assert len(counted) == 2


def test_included_files_are_cached_with_the_flowfile_and_an_edit_of_one_invalidates_it(
        tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    path.write_text('[flow]\ninclude = ["more.toml", "glob/*.toml"]\n\n' + FLOW.replace('greeting = "hello"', ""))
    (tmp_path / "more.toml").write_text('[vars]\ngreeting = "hello"\n')
    first = load(path)
    assert load(path) == first and len(counted) == 1  # a hit, includes and all
    (tmp_path / "more.toml").write_text('[vars]\ngreeting = "bye!!"\n')
    assert load(path).tasks["gather"].command.endswith("echo bye!! >> out/all.csv")
    assert len(counted) == 2
    (tmp_path / "glob").mkdir()
    (tmp_path / "glob" / "t.toml").write_text('[tasks.t]\nrun = "true"\n')
    assert "t" in load(path).tasks  # a new match of an include glob
    assert len(counted) == 3
    (tmp_path / "more.toml").unlink()
    with pytest.raises(FlowfileErrors) as info:
        load(path)
    assert "included file more.toml does not exist" in info.value.render()


def test_deleted_source_file_gives_the_full_loads_error(tmp_path: Path, counted: List[Path]) -> None:
    path = setup(tmp_path)
    load(path)
    (tmp_path / "notes.txt").unlink()
    with pytest.raises(FlowfileErrors) as info:
        load(path)
    assert "notes.txt" in info.value.render()


def test_no_state_dir_means_no_cache_written(tmp_path: Path) -> None:
    path = setup(tmp_path, state_dir=False)
    load(path)
    assert not (tmp_path / ".flowmake").exists()


@shortcut_test  # it checks the cache file is there
def test_changed_env_input_still_reruns_with_a_cached_load(project: Project) -> None:
    # env_inputs are read at run time, not load time: the cache must not hide them.
    project.write("data/a.csv", "1\n")
    project.write("notes.txt", "n\n")
    project.flowfile(FLOW)
    assert project.json_run(env={"CUTOFF": "a"}).returncode == 0
    assert project.json_run(env={"CUTOFF": "a"}).tasks_with("fresh") == ["gather"]
    assert project.exists(".flowmake/flowfile.cache")
    result = project.json_run(env={"CUTOFF": "b"})
    assert result.ran == ["gather"]
    assert kinds(result.reasons("gather")) == ["env changed"]


def test_corrupt_cache_is_ignored(project: Project) -> None:
    project.write("data/a.csv", "1\n")
    project.write("notes.txt", "n\n")
    project.flowfile(FLOW)
    assert project.json_run().returncode == 0
    project.write(".flowmake/flowfile.cache", "garbage")
    result = project.json_run()
    assert result.returncode == 0 and result.tasks_with("fresh") == ["gather"]


MANY = "\n".join(f"""
[tasks.t{i}]
inputs = ["src/s{i}.txt"]
outputs = ["out/t{i}.txt"]
run = "cp {{inputs}} {{outputs}}"
""" for i in range(20))


def many_sources(root: Path, *, aged: bool, linked: Optional[Dict[str, Path]] = None) -> Path:
    """The MANY project: 20 sources in src/ (some symlinks), src/ last modified a minute ago if `aged`."""
    src = root / "src"
    src.mkdir()
    for i in range(20):
        name = f"s{i}.txt"
        if linked and name in linked:
            (src / name).symlink_to(linked[name])
        else:
            (src / name).write_text(f"{i}\n")
    if aged:
        past = time.time() - 60
        os.utime(src, (past, past))
    path = root / "Flowfile.toml"
    path.write_text(MANY)
    ensure_state_dir(root)
    return path


def cached_stamps(root: Path) -> dict:
    return pickle.loads((root / ".flowmake" / loadcache.CACHE_NAME).read_bytes())[4]


@pytest.fixture(params=[False, True], ids=["whole", "paged"])
def small_pages(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """With `paged`, every dict of four entries or more is cached in buckets of four (load/pages.py)."""
    if request.param:
        from flowmake.load import pages

        monkeypatch.setattr(pages, "PAGED_FROM", 4)
        monkeypatch.setattr(pages, "BUCKET", 4)
    return request.param


@pytest.mark.parametrize("aged", [True, False], ids=["dir-stamped", "dir-too-recent"])
@pytest.mark.parametrize("change", ["delete", "replace_with_dir", "dangling_symlink", "symlink_to_file"])
def test_a_source_directory_vouches_for_its_files_until_its_entries_change(
        tmp_path: Path, counted: List[Path], change: str, aged: bool, small_pages: bool) -> None:
    path = many_sources(tmp_path, aged=aged)
    src = tmp_path / "src"
    load(path)
    assert ("src" in cached_stamps(tmp_path)) is aged
    load(path)
    assert len(counted) == 1
    victim = src / "s7.txt"
    victim.unlink()
    if change == "replace_with_dir":
        victim.mkdir()
    elif change == "dangling_symlink":
        victim.symlink_to(src / "nowhere.txt")
    elif change == "symlink_to_file":
        victim.symlink_to(src / "s8.txt")
    if change == "symlink_to_file":
        assert load(path).tasks["t7"].inputs == ("src/s7.txt",)
        assert len(counted) == 1  # still a file, as far as loading is concerned
        return
    with pytest.raises(FlowfileErrors):
        load(path)
    assert len(counted) == 2


def test_a_directory_with_a_symlinked_source_is_never_stamped(tmp_path: Path, counted: List[Path]) -> None:
    (tmp_path / "real.txt").write_text("r\n")
    path = many_sources(tmp_path, aged=True, linked={"s3.txt": tmp_path / "real.txt"})
    load(path)
    assert "src" not in cached_stamps(tmp_path)
    (tmp_path / "real.txt").unlink()  # the link dangles; src's own mtime does not move
    with pytest.raises(FlowfileErrors):
        load(path)


def test_paged_tasks_keep_order_and_unpickle_only_the_page_looked_up(monkeypatch) -> None:
    from flowmake.model import TaskSpec

    monkeypatch.setattr(loadcache, "_PAGE", 4)
    template = TaskSpec(name="x", group="x", command="true", shell=("sh", "-c"), inputs=(), input_groups={},
                        outputs=(), output_groups={}, after=(), help="", env=(), env_inputs=(), always=False,
                        matrix=(), wait_for=(), wait_timeout=3600.0, wait_poll=5.0, retries=0, retry_delay=0.0,
                        timeout=None, secrets=(), line=1)
    tasks = {f"t{i}": template._replace(name=f"t{i}", group=f"t{i}", outputs=(f"out/{i}",)) for i in range(10)}
    paged = pickle.loads(pickle.dumps(loadcache.PagedTasks.pack(tasks)))
    assert list(paged) == list(tasks) and len(paged) == 10
    assert "t9" in paged and "t10" not in paged
    assert paged["t5"] == tasks["t5"]
    assert sorted(paged._specs) == ["t4", "t5", "t6", "t7"]  # t5's page only
    with pytest.raises(KeyError):
        paged["nope"]
    assert dict(paged) == tasks and list(paged.values()) == list(tasks.values())


def test_the_cached_graph_is_the_graph_of_the_flowfile_in_buckets(tmp_path: Path, counted: List[Path],
                                                                   small_pages: bool) -> None:
    from flowmake.load.pages import PagedDict

    path = many_sources(tmp_path, aged=True)
    first = loadcache.load_cached(path, path.parent / ".flowmake", build_graph)[1]
    flowfile, graph = loadcache.load_cached(path, path.parent / ".flowmake", build_graph)
    assert len(counted) == 1
    assert (type(graph.readers) is PagedDict) is small_pages
    # Looked up one entry at a time (as a run's cone does), then whole.
    assert graph.readers.get("src/s3.txt") == first.readers["src/s3.txt"] and graph.readers.get("nope") is None
    assert graph.dependents["t5"] == first.dependents["t5"] and "t19" in graph.deps
    assert graph == first == build_graph(flowfile)
    assert list(graph.deps) == list(first.deps) and list(graph.producers.items()) == list(first.producers.items())
