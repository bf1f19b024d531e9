"""Checking a class (issue 11): `lstmgen check DIR --jobs N` with --jsonl, --shard, --cache,
--scheduler, Ctrl-C, and `lstmgen merge`.

Results are compared with the same documents checked one by one in this process by
`check_file` (the serial path the pool must not change).  Processes are counted by a tag put in
the environment of the command under test: every process it forks inherits it, so a process
left behind is found in /proc after the command has exited.  The long run (10,000 fuzzed
documents through the pool) is marked slow (LSTMGEN_SLOW=1).
"""
from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from test_check_bounds import display, product_identity, wrong_terms

from conftest import ROOT, assert_one_line_error, require, run_cli
from lstmgen.checker import batch, bounds, check_file
from lstmgen.errors import UsageError

CLASS = ROOT / "docs" / "examples" / "class"
LIMITS = {"LSTMGEN_SECONDS_PER_EQUATION": "1", "LSTMGEN_SECONDS_PER_DOCUMENT": "3"}
needs_worker = pytest.mark.skipif(not bounds.USE_WORKER, reason="the worker processes need Linux")


@pytest.fixture
def class_folder(tmp_path):
    """The README's class (four submissions) and two corpus documents, in a folder with a subfolder."""
    folder = tmp_path / "class"
    shutil.copytree(CLASS, folder)
    (folder / "late").mkdir()
    shutil.copy(ROOT / "tests" / "corpus" / "rnn_correct.md", folder / "late" / "eli.md")
    shutil.copy(ROOT / "tests" / "corpus" / "lstm_transpose.md", folder / "fay.md")
    return folder


@pytest.fixture
def low_limits(monkeypatch):
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)


def serial(folder: Path) -> dict:
    """{relative path: report dict} of every document, checked one by one here."""
    return {p.relative_to(folder).as_posix(): check_file(p).to_dict()
            for p in sorted(folder.rglob("*")) if p.suffix in (".md", ".tex")}


def keyed(report, folder: Path) -> dict:
    """{relative path: document} of a `check --json` report (the envelope of version 2)."""
    documents = report["documents"] if isinstance(report, dict) else report  # or JSON Lines' documents
    return {Path(r["file"]).relative_to(folder).as_posix(): r for r in documents}


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def without_batch(line: dict) -> dict:
    return {k: v for k, v in line.items() if k != "batch"}


# ----------------------------------------------------------------------------- processes
def tagged_processes(tag: str) -> list[int]:
    """Pids of the running processes whose environment holds LSTMGEN_TEST_TAG=tag."""
    needle = ("LSTMGEN_TEST_TAG=%s" % tag).encode()
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    out.append(int(entry.name))
            except OSError:
                pass  # gone, or not ours to read
    return out


def start(*args, tag: str, env: dict | None = None, **popen) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8", LSTMGEN_TEST_TAG=tag, **(env or {}))
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "lstmgen", *map(str, args)], env=environment, cwd=ROOT, **popen)


def read_line(stream, seconds: float) -> bytes:
    """The next line of a pipe, waiting at most `seconds` (b"" at its end)."""
    deadline = time.monotonic() + seconds
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, "no line after %g s" % seconds
        if select.select([stream], [], [], left)[0]:
            char = os.read(stream.fileno(), 1)
            if not char:
                return line
            line += char
    return line


def wait_until_gone(tag: str, seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return tagged_processes(tag)


# ----------------------------------------------------------------------------- the document list
def test_keys_order_and_shard_the_same_on_every_machine(tmp_path, class_folder):
    elsewhere = tmp_path / "deep" / "copy"
    shutil.copytree(class_folder, elsewhere)
    here, _ = batch.find([class_folder])
    there, _ = batch.find([str(elsewhere)])
    assert [d.key for d in here] == [d.key for d in there] == sorted(d.key for d in here)
    assert "late/eli.md" in [d.key for d in here]
    slices = [batch.shard(here, k, 3) for k in (1, 2, 3)]
    assert sorted((d for s in slices for d in s), key=lambda d: d.key) == here  # a partition
    assert [[d.key for d in s] for s in slices] == [[d.key for d in batch.shard(there, k, 3)] for k in (1, 2, 3)]


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "1/0", "-1/2"])
def test_a_shard_is_k_of_n(text):
    with pytest.raises(UsageError):
        batch.parse_shard(text)


@pytest.mark.parametrize("args,fragment", [
    (["--shard", "5/4"], "--shard"), (["--jobs", "0"], "--jobs"), (["--json", "--jsonl"], "--jsonl"),
    (["--cache", "README.md"], "--cache"),
])
def test_bad_batch_options_are_one_line(args, fragment):
    assert_one_line_error(run_cli("check", CLASS, *args), fragment)


# ----------------------------------------------------------------------------- results
@needs_worker
def test_the_pool_gives_what_the_serial_check_gives(class_folder, capsys):
    expected = serial(class_folder)
    assert batch.run([class_folder], output="json", jobs=2) == 1
    assert keyed(json.loads(capsys.readouterr().out), class_folder) == expected
    assert batch.run([class_folder], output="json", jobs=1) == 1
    assert keyed(json.loads(capsys.readouterr().out), class_folder) == expected


@needs_worker
def test_jsonl_streams_each_document_then_all_in_key_order(class_folder):
    proc = run_cli("check", class_folder, "--jsonl", "--jobs", "2")
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    lines = jsonl(proc.stdout)
    documents = sorted(serial(class_folder))
    assert [line["batch"]["order"] for line in lines] == ["finished"] * len(documents) + ["sorted"] * len(documents)
    finished, ordered = lines[:len(documents)], lines[len(documents):]
    assert [line["batch"]["key"] for line in ordered] == documents
    assert [line["batch"]["index"] for line in ordered] == list(range(len(documents)))
    assert sorted(json.dumps(line, sort_keys=True) for line in finished) == \
        sorted(json.dumps(dict(line, batch=dict(line["batch"], order="finished")), sort_keys=True) for line in ordered)
    as_json = json.loads(run_cli("check", class_folder, "--json").stdout)
    assert [without_batch(line) for line in ordered] == as_json["documents"]
    assert {line["batch"]["shard"][1] for line in lines} == {1} and {line["batch"]["documents"] for line in lines} == {6}


@needs_worker
def test_exit_codes_of_a_class(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(CLASS / "ben.tex", good / "ben.tex")
    shutil.copy(ROOT / "tests" / "corpus" / "rnn_correct.md", good / "rnn.md")
    assert run_cli("check", good, "--jobs", "2", "--cell", "lstm").returncode == 1  # rnn.md is not an LSTM
    assert run_cli("check", good / "ben.tex", "--jobs", "2").returncode == 0
    (good / "binary.md").write_bytes(b"$$x\x00$$")
    proc = run_cli("check", good, "--jsonl")
    binary = [line for line in jsonl(proc.stdout) if line["file"].endswith("binary.md")]
    assert proc.returncode == 1 and len(binary) == 2 and "binary" in binary[0]["equations"][0]["message"]
    assert_one_line_error(run_cli("check", good / "binary.md", "--jsonl"), "binary")


@needs_worker
def test_slow_documents_take_their_limit_and_leave_the_others_alone(class_folder, low_limits, capsys):
    expected = serial(class_folder)
    (class_folder / "hang.md").write_text(display(product_identity(), r"\frac{\partial L}{\partial b^o} = h_t"))
    (class_folder / "long.md").write_text(display(*[wrong_terms(11)] * 12))
    started = time.monotonic()
    assert batch.run([class_folder], output="json", jobs=2) == 1
    seconds = time.monotonic() - started
    got = keyed(json.loads(capsys.readouterr().out), class_folder)
    hang, long = got.pop("hang.md"), got.pop("long.md")
    assert got == expected
    assert hang["equations"][0]["message"] == "gave up after 1 s on this equation"
    assert hang["equations"][1]["status"] == "incorrect"  # the equation after the lost one is judged
    assert any(e["message"].startswith("not judged: the document took longer than 3 s") for e in long["equations"])
    assert seconds < 60  # does not hang: each document ends within its limit


@needs_worker
def test_the_workers_are_the_jobs_and_none_is_left_behind(class_folder):
    tag = uuid.uuid4().hex
    (class_folder / "hang.md").write_text(display(product_identity()))
    proc = start("check", class_folder, "--jobs", "2", "--jsonl", tag=tag, env=LIMITS)
    most, output = 0, []
    drain = threading.Thread(target=lambda: output.append(proc.stdout.read()))  # a full pipe would block it
    drain.start()
    while proc.poll() is None:
        most = max(most, len(tagged_processes(tag)) - 1)  # less the command itself
        time.sleep(0.02)
    drain.join()
    out, err = output[0], proc.stderr.read()
    assert proc.returncode == 1 and b"Traceback" not in err, err
    assert 1 <= most <= 2, most
    assert wait_until_gone(tag, 1) == []
    assert len(jsonl(out.decode())) == 2 * 7


@needs_worker
def test_a_worker_that_dies_is_replaced(class_folder):
    expected = serial(class_folder)
    tag = uuid.uuid4().hex
    (class_folder / "hang.md").write_text(display(product_identity(), r"\frac{\partial L}{\partial b^o} = h_t"))
    proc = start("check", class_folder, "--jobs", "1", "--jsonl", tag=tag,
                 env={"LSTMGEN_SECONDS_PER_EQUATION": "20", "LSTMGEN_SECONDS_PER_DOCUMENT": "30"})
    for _ in range(5):  # ana, ben, chen, dara, fay: then hang.md, in key order with one job
        read_line(proc.stdout, 60)
    time.sleep(2)  # inside hang.md's first equation, which takes the 20 s
    workers = [pid for pid in tagged_processes(tag) if pid != proc.pid]
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err == b"", err
    lines = jsonl(out.decode("utf-8"))
    ordered = keyed([line for line in lines if line["batch"]["order"] == "sorted"], class_folder)
    hang = ordered.pop("hang.md")["equations"]
    assert "memory" in hang[0]["message"]  # what a worker's death is taken for
    assert hang[1]["status"] == "incorrect"  # judged by the new worker
    assert {k: without_batch(v) for k, v in ordered.items()} == expected
    assert wait_until_gone(tag, 1) == []


@needs_worker
def test_ctrl_c_stops_the_workers_and_keeps_the_finished_documents(class_folder):
    tag = uuid.uuid4().hex
    for n in range(4):
        (class_folder / ("hang%d.md" % n)).write_text(display(product_identity(), product_identity()))
    proc = start("check", class_folder, "--jobs", "2", "--jsonl", tag=tag,
                 env={"LSTMGEN_SECONDS_PER_EQUATION": "20", "LSTMGEN_SECONDS_PER_DOCUMENT": "60"})
    first = [json.loads(read_line(proc.stdout, 60)) for _ in range(5)]  # ana ... fay; then hang0 and hang1 run
    time.sleep(1)
    assert len(tagged_processes(tag)) == 3  # the command and its two workers
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - interrupted < 10  # not the 20 s of the equations being judged
    assert proc.returncode == 130, (proc.returncode, err)
    assert b"Traceback" not in err and len(err.decode().splitlines()) == 1, err
    lines = first + jsonl(out.decode())
    finished = [line for line in lines if line["batch"]["order"] == "finished"]
    ordered = [line for line in lines if line["batch"]["order"] == "sorted"]
    assert 5 <= len(finished) < 10
    assert [without_batch(line) for line in ordered] == sorted((without_batch(line) for line in finished),
                                                               key=lambda line: line["file"])
    assert err.decode() == "lstmgen: interrupted: %d of 10 documents checked, their results written\n" % len(finished)
    assert wait_until_gone(tag) == []


def test_a_progress_bar_on_a_terminal_only(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for name in ("ana.md", "ben.tex"):
        shutil.copy(CLASS / name, small / name)
    quiet = run_cli("check", small, "--jsonl")
    assert quiet.stderr == ""
    controller, terminal = pty.openpty()
    try:
        proc = start("check", small, "--jsonl", tag=uuid.uuid4().hex, stderr=terminal)
        os.close(terminal)
        out, _ = proc.communicate(timeout=120)
        shown = b""
        while select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other side is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert proc.returncode == 1 and len(out.splitlines()) == 4
    assert b"2/2" in shown and b"doc" in shown, shown


# ----------------------------------------------------------------------------- the cache
def test_a_cache_rechecks_only_the_changed_documents(tmp_path, class_folder, monkeypatch, capsys):
    import lstmgen.checker as checker

    calls = []
    real = checker.check_text
    monkeypatch.setattr(checker, "check_text", lambda text, cell, source: calls.append(source) or real(text, cell, source))
    cache = tmp_path / "cache"
    first_run = batch.run([class_folder], output="json", jobs=2, cache=str(cache))
    first = json.loads(capsys.readouterr().out)
    assert len(calls) == 6
    calls.clear()
    assert batch.run([class_folder], output="json", jobs=2, cache=str(cache)) == first_run
    assert json.loads(capsys.readouterr().out) == first and calls == []
    ana = class_folder / "ana.md"
    ana.write_text(ana.read_text().replace("x_t", "x_{t}", 1))
    (class_folder / "fay.md").write_text((CLASS / "ben.tex").read_text())  # another student's content, by another name
    (class_folder / "late" / "eli.md").touch()  # a new date, the same content
    batch.run([class_folder], output="json", jobs=2, cache=str(cache))
    again = keyed(json.loads(capsys.readouterr().out), class_folder)
    assert sorted(Path(c).name for c in calls) == ["ana.md", "fay.md"]
    assert again == serial(class_folder)  # the kept ones are what a fresh check gives, under their own names
    calls.clear()
    batch.run([class_folder], output="json", jobs=2, cache=str(cache), cell="lstm")  # another cell: another key
    capsys.readouterr()
    assert len(calls) == 6


def test_a_report_cut_short_by_a_limit_is_not_kept(tmp_path, low_limits, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "long.md").write_text(display(*[wrong_terms(11)] * 12))
    cache = tmp_path / "cache"
    batch.run([folder], output="json", cache=str(cache))
    capsys.readouterr()
    assert not list(cache.rglob("*.json"))


# ----------------------------------------------------------------------------- shards and merge
@pytest.fixture
def shards(tmp_path, class_folder):
    """The class checked as three shards: their JSON Lines files, the unsharded --json, the folder."""
    files = []
    for k in (1, 2, 3):
        proc = run_cli("check", class_folder, "--jsonl", "--shard", "%d/3" % k)
        assert proc.returncode == 1 and proc.stderr == "", proc.stderr
        files.append(tmp_path / ("shard%d.jsonl" % k))
        files[-1].write_text(proc.stdout, encoding="utf-8")
    whole = json.loads(run_cli("check", class_folder, "--json").stdout)
    return files, whole, class_folder


def test_merged_shards_are_the_whole_class(shards):
    files, whole, folder = shards
    assert [len(jsonl(f.read_text())) for f in files] == [4, 4, 4]  # 6 documents: 2 per shard, twice each
    proc = run_cli("merge", *reversed(files), "--json")
    assert proc.returncode == 1 and proc.stderr == ""
    assert json.loads(proc.stdout) == whole
    again = run_cli("merge", *files, "--jsonl")
    assert [without_batch(line) for line in jsonl(again.stdout)] == whole["documents"]
    assert run_cli("merge", *files).stdout == run_cli("check", folder, "--jobs", "1").stdout


def test_merge_refuses_what_is_not_one_whole_run(tmp_path, shards):
    files = shards[0]
    one, two, three = (str(f) for f in files)
    assert_one_line_error(run_cli("merge", one, two), "shard 3/3")
    assert_one_line_error(run_cli("merge", one, two, three, one), "shard 1/3 is also in")
    lines = files[1].read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text(lines[0] + "\n")
    assert_one_line_error(run_cli("merge", one, str(short), three), "incomplete")
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(line.replace('"cell": "auto"', '"cell": "gru"') for line in lines) + "\n")
    assert_one_line_error(run_cli("merge", one, str(other), three), "from another run")
    changed = tmp_path / "changed.jsonl"
    edited = json.loads(lines[-1])
    edited["equations"][0]["status"] = "correct"
    changed.write_text("\n".join(lines[:-1] + [json.dumps(edited)]) + "\n")
    assert_one_line_error(run_cli("merge", one, str(changed), three), "differs from its line")
    elsewhere = json.loads(lines[0])
    elsewhere["batch"]["index"] = 2  # shard 3/3's
    for bad, fragment in [("{not json", "not JSON"), ('{"file": "x.md"}', "not a line of"), ("[1, 2]", "not a line of"),
                          (json.dumps(elsewhere), "document 2 does not belong to shard 2/3")]:
        broken = tmp_path / "broken.jsonl"
        broken.write_text(bad + "\n")
        assert_one_line_error(run_cli("merge", one, str(broken), three), "broken.jsonl:1: " + fragment)
    assert_one_line_error(run_cli("merge", str(tmp_path / "none.jsonl")), "cannot read it")


# ----------------------------------------------------------------------------- Dask
@needs_worker
def test_a_dask_cluster_checks_the_class_as_the_pool_does(class_folder, capsys):
    require("distributed", "LSTMGEN_REQUIRE_DASK")
    import dask
    from distributed import LocalCluster

    expected = serial(class_folder)
    (class_folder / "hang.md").write_text(display(product_identity(), r"\frac{\partial L}{\partial b^o} = h_t"))
    # Dask workers are daemonic by default, and a daemonic process may not fork the checker's
    # bounds worker: then the cooperative limits alone hold (README, "Grading a class").
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         env={"PYTHONPATH": str(ROOT), **LIMITS}) as cluster:
        assert batch.run([class_folder], output="jsonl", scheduler=cluster.scheduler_address) == 1
    lines = jsonl(capsys.readouterr().out)
    ordered = keyed([line for line in lines if line["batch"]["order"] == "sorted"], class_folder)
    hang = ordered.pop("hang.md")
    assert {k: without_batch(v) for k, v in ordered.items()} == expected
    assert hang["equations"][0]["message"] == "gave up after 1 s on this equation"


def test_without_dask_the_scheduler_option_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(UsageError, match=r"lstmgen\[dask\]"):
        batch.DaskPool("tcp://127.0.0.1:1")


# ----------------------------------------------------------------------------- the long run
@needs_worker
@pytest.mark.slow
def test_ten_thousand_fuzzed_documents_through_the_pool(tmp_path):
    from test_check_fuzz_long import DOCUMENTS, document

    folder = tmp_path / "fuzz"
    folder.mkdir()
    for seed in range(DOCUMENTS):
        (folder / ("fuzz-%05d.md" % seed)).write_text(document(seed), encoding="utf-8", errors="surrogatepass")
    tag = uuid.uuid4().hex
    proc = start("check", folder, "--jobs", "2", "--jsonl", tag=tag, stdout=subprocess.PIPE)
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode in (0, 1) and err == b"", err[-2000:]
    lines = jsonl(out.decode("utf-8"))
    assert len(lines) == 2 * DOCUMENTS
    assert [line["batch"]["index"] for line in lines[DOCUMENTS:]] == list(range(DOCUMENTS))
    for line in lines[DOCUMENTS:]:
        for entry in line["equations"]:
            assert entry["status"] in ("correct", "incorrect", "unrecognized")
            assert "could not judge this equation" not in entry["message"], (line["file"], entry["message"])
    assert wait_until_gone(tag) == []


def test_a_line_separator_in_a_document_stays_inside_its_json_line(tmp_path):
    """U+2028, U+2029 and U+0085 are legal raw in JSON but end a line for str.splitlines: an
    equation holding them (seen in the 10,000 fuzzed documents) must not split its JSON line."""
    folder = tmp_path / "odd"
    folder.mkdir()
    for n, odd in enumerate(["\u2028", "\u2029", "\x85"]):  # in text the report repeats: an unreadable part
        (folder / ("odd%d.md" % n)).write_text(display("\\frac{\\partial L}{\\partial b^o} = \u13a0%s\u1f56" % odd),
                                                 encoding="utf-8")
    proc = run_cli("check", folder, "--jsonl")
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 6 and {line["batch"]["order"] for line in lines} == {"finished", "sorted"}
