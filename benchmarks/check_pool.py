"""Figures of `lstmgen check` on a class (issue 11): wall time with --jobs 1 and --jobs 2, the
peak memory of the whole process tree, and a long run of fuzzed documents through the pool.

    python benchmarks/check_pool.py                   # 500 documents of 60 equations, jobs 1 and 2
    python benchmarks/check_pool.py --documents 100 --executor processes   # also a ProcessPoolExecutor
    python benchmarks/check_pool.py --fuzz 10000      # 10,000 fuzzed documents through --jobs 2

After the pool runs comes the ceiling: 100 of the documents checked in one process, and in two
independent processes of half each (no pool, no workers): the speed-up this machine gives two
processes doing this work, which bounds what --jobs 2 can reach.

Every run is a fresh `python -m lstmgen check DIR --jsonl` (as a teacher runs it), its output sent
to a file.  The documents are generated/lstm_derivation.md (60 display equations) with a few of its
equations changed per student (a seeded choice of small mistakes), so that they differ as a class's
do.  Memory is sampled every 50 ms from /proc: the sum of the resident sets (RSS) of the command
and every process it forked, and the same as PSS (the pages that forked workers share with their
parent counted once); RUSAGE_CHILDREN gives the largest single process.  Prints figures; asserts
nothing.  The machine may be shared: say so beside the figures.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "generated" / "lstm_derivation.md"
MISTAKES = [("(1 - ", "(1 + "), ("_{t-1}", "_t"), ("^T", ""), ("\\tanh", "\\sigma"), ("f_t", "i_t")]


def build_class(folder: Path, count: int) -> None:
    """`count` submissions: the derivation with 0-3 display equations changed each."""
    text = SOURCE.read_text(encoding="utf-8")
    blocks = [m.span() for m in re.finditer(r"\$\$.*?\$\$", text, re.S)]
    for n in range(count):
        rng = random.Random(n)
        out = text
        for start, end in sorted(rng.sample(blocks, rng.randint(0, 3)), reverse=True):
            old, new = rng.choice(MISTAKES)
            out = out[:start] + out[start:end].replace(old, new, 1) + out[end:]
        (folder / ("student%04d.md" % n)).write_text(out, encoding="utf-8")


def build_fuzz(folder: Path, count: int) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's lstmgen, as the runs use
    from test_check_fuzz_long import document

    for seed in range(count):
        (folder / ("fuzz-%05d.md" % seed)).write_text(document(seed), encoding="utf-8", errors="surrogatepass")


def tagged(tag: str) -> list[int]:
    needle = ("LSTMGEN_BENCH_TAG=%s" % tag).encode()
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in bytes, 0 when it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/%d/smaps_rollup" % pid).read_text().splitlines()
                      if ":" in line)
        return int(fields["Rss"].split()[0]) * 1024, int(fields["Pss"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0, 0


class TreeMemory(threading.Thread):
    """Samples the summed RSS and PSS of the processes carrying `tag` until stopped."""

    def __init__(self, tag: str):
        super().__init__(daemon=True)
        self.tag, self.done = tag, threading.Event()
        self.rss = self.pss = self.processes = 0

    def run(self):
        while not self.done.is_set():
            pids = tagged(self.tag)
            samples = [_memory(pid) for pid in pids]
            self.rss = max(self.rss, sum(s[0] for s in samples))
            self.pss = max(self.pss, sum(s[1] for s in samples))
            self.processes = max(self.processes, len(pids))
            self.done.wait(0.05)


def timed(command: list, out: Path) -> dict:
    """Run `command` with a fresh tag; wall time, exit code, memory, stderr, processes left."""
    tag = uuid.uuid4().hex
    env = dict(os.environ, PYTHONPATH=str(ROOT), LSTMGEN_BENCH_TAG=tag)
    memory = TreeMemory(tag)
    memory.start()
    started = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.run(command, stdout=sink, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    seconds = time.monotonic() - started
    memory.done.set()
    memory.join()
    time.sleep(0.2)
    return {"seconds": seconds, "code": proc.returncode, "rss": memory.rss, "pss": memory.pss,
            "processes": memory.processes, "stderr": proc.stderr.decode("utf-8", "replace"), "left": len(tagged(tag)),
            "largest": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def _check_one(path: str) -> str:
    from lstmgen.checker import check_file

    return str(check_file(path).summary)


def serial(paths: list[str]) -> None:
    """Check `paths` one after another in this process: no pool, no bounds worker."""
    for path in paths:
        print(_check_one(path), flush=True)


def ceiling(folder: Path, count: int) -> tuple[float, float]:
    """What this machine gives two independent processes doing the checker's own work: seconds for
    one process checking `count` documents, and for two processes started together checking half
    each (the wall time until both are done).  Their ratio bounds any pool's --jobs 2 speed-up."""
    paths = sorted(str(p) for p in folder.glob("*.md"))[:count]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, __file__, "--_serial"]
    started = time.monotonic()
    subprocess.run(command + paths, stdout=subprocess.DEVNULL, env=env, cwd=ROOT, check=True)
    one = time.monotonic() - started
    started = time.monotonic()
    halves = [subprocess.Popen(command + paths[k::2], stdout=subprocess.DEVNULL, env=env, cwd=ROOT) for k in (0, 1)]
    if any(proc.wait() for proc in halves):
        raise SystemExit("the ceiling run failed")
    return one, time.monotonic() - started


def process_pool(folder: str, jobs: int) -> None:
    """The same class through concurrent.futures.ProcessPoolExecutor (each process drives its own
    bounds worker): the alternative batch.py's threads were measured against."""
    paths = sorted(str(p) for p in Path(folder).glob("*.md"))
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=__import__("multiprocessing").get_context("fork")) as pool:
        for summary in pool.map(_check_one, paths, chunksize=1):
            print(summary, flush=True)


def report(name: str, figures: dict, documents: int) -> None:
    print("%-34s %7.1f s  %5.3f s/doc  exit %d  peak tree RSS %4.0f MB, PSS %4.0f MB, largest process %4.0f MB, "
          "%d processes at most, %d left after exit" % (
              name, figures["seconds"], figures["seconds"] / documents, figures["code"], figures["rss"] / 1e6,
              figures["pss"] / 1e6, figures["largest"] / 1e6, figures["processes"], figures["left"]))
    if "Traceback" in figures["stderr"]:
        print("  TRACEBACK on stderr:\n" + figures["stderr"][-3000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--executor", choices=["threads", "processes"], nargs="+", default=["threads"],
                        help="threads: lstmgen check --jobs N; processes: a ProcessPoolExecutor of check_file")
    parser.add_argument("--fuzz", type=int, default=0, help="instead: this many fuzzed documents with --jobs 2")
    parser.add_argument("--ceiling", type=int, default=100, metavar="DOCUMENTS",
                        help="documents of the ceiling run: one process against two independent ones (0: none)")
    parser.add_argument("--_process-pool", nargs=2, metavar=("DIR", "JOBS"), help=argparse.SUPPRESS)
    parser.add_argument("--_serial", nargs="+", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._serial:
        serial(args._serial)
        return
    if args._process_pool:
        process_pool(args._process_pool[0], int(args._process_pool[1]))
        return
    print("machine: %s, %d usable cores, load average %s (1, 5, 15 min) at the start" % (
        os.uname().machine, len(os.sched_getaffinity(0)), " ".join("%.2f" % x for x in os.getloadavg())))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "class"
        folder.mkdir()
        out = Path(scratch) / "out.jsonl"
        if args.fuzz:
            build_fuzz(folder, args.fuzz)
            figures = timed([sys.executable, "-m", "lstmgen", "check", str(folder), "--jobs", "2", "--jsonl"], out)
            lines = out.read_bytes().count(b"\n")
            report("fuzz, --jobs 2", figures, args.fuzz)
            print("  %d lines for %d documents (expected %d), exit code %d, stderr %d bytes" % (
                lines, args.fuzz, 2 * args.fuzz, figures["code"], len(figures["stderr"])))
            return
        build_class(folder, args.documents)
        times = {}
        for executor in args.executor:
            for jobs in args.jobs:
                if executor == "threads":
                    command = [sys.executable, "-m", "lstmgen", "check", str(folder), "--jobs", str(jobs), "--jsonl"]
                else:
                    command = [sys.executable, __file__, "--_process-pool", str(folder), str(jobs)]
                figures = timed(command, out)
                times[executor, jobs] = figures["seconds"]
                report("%s, %d documents, --jobs %d" % (executor, args.documents, jobs), figures, args.documents)
        for executor in args.executor:
            if (executor, 1) in times:
                for jobs in args.jobs:
                    if jobs != 1 and (executor, jobs) in times:
                        print("%s: --jobs %d is %.2fx faster than --jobs 1" % (
                            executor, jobs, times[executor, 1] / times[executor, jobs]))
        if args.ceiling:
            one, two = ceiling(folder, min(args.ceiling, args.documents))
            print("ceiling: %d documents in one process %.1f s, halves in two independent processes %.1f s: "
                  "%.2fx, what this machine gives two processes at this work" % (
                      min(args.ceiling, args.documents), one, two, one / two))
            for executor in args.executor:
                if (executor, 1) in times and (executor, 2) in times:
                    print("%s: --jobs 2 reaches %.0f%% of the ceiling" % (
                        executor, 100 * times[executor, 1] / times[executor, 2] / (one / two)))
    print("load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()
