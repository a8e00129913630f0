#!/usr/bin/env python3
"""run_profiler_tests.py - end-to-end tests of `tally run` and `tally report`.

Each case runs a program under `tally run`, reads `tally report --format json` and
checks the figures the program is known to produce.  One case per ctest test:

    run_profiler_tests.py --tally TALLY --progs DIR --src DIR CASE

Cases: exact, calls, cxx, threads, crash, abort, kill, fork, dlopen, sample, python, text,
valgrind (leaks against memcheck, peak against massif), diff (`tally diff`), plot
(`tally plot`: the SVG parsed as XML, its peak and widths against the report), badfiles
(diff and plot of missing, foreign, empty and truncated files), snapshot (report and
diff of snapshot dumps of Tally's own tracer, written by prog_dump.c), html (the HTML
report parsed: balanced tags, its tables, chart, figures and escaping).  The programs are in
tests/tools/prog_*.c; their marker comments (/* LEAK_LINE */ ...) give the lines the
report must name.  Exit status 0: passed; 77: skipped (a tool is missing).
"""
import argparse
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def marker_line(src, name, marker):
    with open(os.path.join(src, name)) as f:
        for i, line in enumerate(f, 1):
            if marker in line:
                return i
    raise Fail(f"marker {marker} not in {name}")


class Env:
    def __init__(self, args):
        self.tally = args.tally
        self.progs = args.progs
        self.src = args.src
        self.tmp = tempfile.mkdtemp(prefix="tally-prof-")

    def prog(self, name):
        return os.path.join(self.progs, name)

    def run(self, argv, out="cap.tly", opts=(), expect_rc=0, **kw):
        cap = os.path.join(self.tmp, out)
        cmd = [self.tally, "run", *opts, "-o", cap, "--", *argv]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kw)
        if expect_rc is not None and p.returncode != expect_rc:
            raise Fail(f"{cmd}: exit {p.returncode}, expected {expect_rc}\n{p.stderr}")
        return cap, p

    def report(self, cap, fmt="json", top=50):
        p = subprocess.run([self.tally, "report", cap, "--format", fmt, "--top", str(top)],
                           capture_output=True, text=True, timeout=240)
        if p.returncode != 0:
            raise Fail(f"tally report {cap}: exit {p.returncode}\n{p.stderr}")
        return json.loads(p.stdout) if fmt == "json" else p.stdout


def site_is(entry, function, file=None, line=None):
    s = entry["site"]
    if s is None or s["function"] is None or function not in s["function"]:
        return False
    if file is not None and (s["file"] is None or not s["file"].endswith(file)):
        return False
    return line is None or s["line"] == line


def find_site(rep, table, function):
    for e in rep[table]:
        if site_is(e, function):
            return e
    return None


def leak_with(rep, function):
    for e in rep["leaks"]:
        if e["stack"] and e["stack"][0]["function"] and function in e["stack"][0]["function"]:
            return e
    return None


# ---- cases ---------------------------------------------------------------------------

def case_exact(env):
    cap, _ = env.run([env.prog("tally_prog_alloc"), "exact"])
    rep = env.report(cap)
    sizes = [16 + (i % 100) * 8 for i in range(1000)]
    t = rep["totals"]
    check(rep["exited"] and not rep["truncated"], "capture should be complete")
    check(t["allocations"] == 1000, f"allocations {t['allocations']} != 1000")
    check(t["frees"] == 990, f"frees {t['frees']} != 990")
    check(t["bytes_allocated"] == sum(sizes), f"bytes {t['bytes_allocated']} != {sum(sizes)}")
    check(rep["peak"]["bytes"] == sum(sizes) and rep["peak"]["blocks"] == 1000,
          f"peak {rep['peak']}")
    check(rep["exit"] == {"bytes": sum(sizes[990:]), "blocks": 10}, f"exit {rep['exit']}")
    check(len(rep["leaks"]) == 1, f"one leaking stack expected: {rep['leaks']}")
    leak = rep["leaks"][0]
    top = leak["stack"][0]
    line = marker_line(env.src, "prog_alloc.c", "LEAK_LINE")
    check(leak["count"] == 10 and leak["bytes"] == sum(sizes[990:]), f"leak {leak}")
    check(top["function"] == "leak_block" and top["file"].endswith("prog_alloc.c")
          and top["line"] == line, f"leak site {top}, expected leak_block prog_alloc.c:{line}")
    check(any(f["function"] == "main" for f in leak["stack"]), "main not in the leak's stack")
    make = find_site(rep, "allocated_by_count", "make_block")
    check(make is not None and make["count"] == 990 and make["bytes"] == sum(sizes[:990])
          and make["site"]["line"] == marker_line(env.src, "prog_alloc.c", "MAKE_LINE"),
          f"make_block site {make}")
    # --frames 1: only the immediate caller.
    cap1, _ = env.run([env.prog("tally_prog_alloc"), "exact"], out="f1.tly", opts=["--frames", "1"])
    rep1 = env.report(cap1)
    check(rep1["frames"] == 1 and all(len(e["stack"]) == 1 for e in rep1["leaks"]),
          "--frames 1 should record one frame")
    check(rep1["totals"] == rep["totals"], "--frames 1 totals differ")


def case_calls(env):
    cap, _ = env.run([env.prog("tally_prog_alloc"), "calls"])
    rep = env.report(cap)
    t = rep["totals"]
    check(t["by_kind"] == {"malloc": 1, "calloc": 2, "realloc": 3, "aligned": 6, "new": 0,
                           "new[]": 0}, f"by kind {t['by_kind']}")
    check(t["allocations"] == 12 and t["frees"] == 10, f"totals {t}")
    check(rep["exit"] == {"bytes": 940, "blocks": 2}, f"exit {rep['exit']}")
    lines = {marker_line(env.src, "prog_alloc.c", "LEAK_CALLOC"),
             marker_line(env.src, "prog_alloc.c", "LEAK_ALIGNED")}
    got = {e["stack"][0]["line"] for e in rep["leaks"] if e["stack"][0]["function"] == "leak_calls"}
    check(got == lines, f"leak lines {got} != {lines}")


def case_cxx(env):
    prog = env.prog("tally_prog_cxx")
    if not os.path.exists(prog):
        print("no C++ compiler: skipped")
        return SKIP
    cap, _ = env.run([prog])
    rep = env.report(cap)
    k = rep["totals"]["by_kind"]
    # Beyond the program's own: libstdc++'s emergency exception pool (one malloc).
    check(k["new"] == 3 and k["new[]"] == 4, f"by kind {k}")
    leak = leak_with(rep, "leak_cxx")
    line = marker_line(env.src, "prog_cxx.cpp", "CXX_LEAK_LINE")
    check(leak is not None and leak["count"] == 1 and leak["bytes"] == 77
          and leak["stack"][0]["line"] == line, f"leak_cxx leak {leak}")
    live_new = [e for e in rep["leaks"] if e is not leak and e["stack"]
                and "main" in [f["function"] for f in e["stack"]]]
    check(not live_new, f"only leak_cxx should leak from main: {live_new}")


def case_threads(env):
    cap, p = env.run([env.prog("tally_prog_threads")])
    count, nbytes = map(int, p.stdout.split())
    rep = env.report(cap)
    site = find_site(rep, "allocated_by_count", "thread_alloc")
    check(site is not None and site["count"] == count and site["bytes"] == nbytes,
          f"thread_alloc site {site}, expected {count} blocks {nbytes} bytes")
    check(rep["totals"]["frees"] >= count, "frees missing")
    check(find_site(rep, "exit_by_count", "thread_alloc") is None, "thread_alloc blocks leaked")
    check(rep["totals"]["unmatched_frees"] == 0, "unmatched frees")


def case_death(env, mode, sig):
    cap, p = env.run([env.prog("tally_prog_alloc"), mode], expect_rc=128 + sig)
    rep = env.report(cap)
    check(not rep["exited"], "a crashed program cannot have reached exit")
    site = find_site(rep, "allocated_by_count", "before_death")
    check(site is not None and site["count"] == 100 and site["bytes"] == 100000,
          f"before_death site {site}")
    text = env.report(cap, fmt="text")
    check("did not reach exit()" in text, "text report should say the program did not exit")


def case_crash(env):
    case_death(env, "crash", signal.SIGSEGV)


def case_abort(env):
    case_death(env, "abort", signal.SIGABRT)


def children(ppid):
    """Pids whose parent is ppid (from /proc, without procps)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            out.append(int(d))
    return out


def case_kill(env):
    cap = os.path.join(env.tmp, "kill.tly")
    proc = subprocess.Popen([env.tally, "run", "-o", cap, "--", env.prog("tally_prog_alloc"),
                             "wait"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    check(line == "ready\n", f"program said {line!r}")
    # The program is tally's child: kill it, not tally.
    pids = children(proc.pid)
    check(len(pids) == 1, f"children of tally run: {pids}")
    os.kill(pids[0], signal.SIGKILL)
    rc = proc.wait(timeout=60)
    check(rc == 128 + signal.SIGKILL, f"tally run exit {rc}")
    rep = env.report(cap)
    site = find_site(rep, "allocated_by_count", "before_death")
    check(site is not None and site["count"] == 100, f"before_death site {site}")
    check(not rep["exited"], "killed program reached exit?")


def case_fork(env):
    for f in os.listdir(env.tmp):
        os.unlink(os.path.join(env.tmp, f))
    true = shutil.which("true") or "/bin/true"
    cap, _ = env.run([env.prog("tally_prog_alloc"), "fork", os.path.realpath(true)])
    rep = env.report(cap)
    sizes = sorted({e["bytes"] // e["count"] for e in rep["allocated_by_count"]
                    if e["stack"] and any(f["function"] == "fork_test" for f in e["stack"])})
    check(sizes == [111, 333], f"parent capture should hold 111 and 333 only: {sizes}")
    others = [f for f in os.listdir(env.tmp) if f.startswith("cap.tly.")]
    check(len(others) == 1, f"one capture from the exec'd child expected: {others}")
    child = env.report(os.path.join(env.tmp, others[0]))
    check(child["exited"] and child["argv"][0].endswith("true"), f"child capture {child['argv']}")


def case_dlopen(env):
    lib = env.prog("libtally_prog_lib.so")
    cap, _ = env.run([env.prog("tally_prog_alloc"), "dlopen", lib])
    rep = env.report(cap)
    leak = leak_with(rep, "tally_test_lib_alloc")
    line = marker_line(env.src, "prog_lib.c", "LIB_LINE")
    check(leak is not None and leak["count"] == 4 and leak["bytes"] == 4 * 4444
          and leak["stack"][0]["file"].endswith("prog_lib.c")
          and leak["stack"][0]["line"] == line,
          f"leak from the dlopen'ed library: {leak}")


def case_sample(env):
    prog = env.prog("tally_prog_threads")
    cap, p = env.run([prog], opts=["--sample", "65536"])
    count, nbytes = map(int, p.stdout.split())
    rep = env.report(cap)
    check(rep["sample_bytes"] == 65536, "sample_bytes")
    site = find_site(rep, "allocated_by_bytes", "thread_alloc")
    check(site is not None, "thread_alloc not sampled at all")
    # 92 MB at one sample per 64 KiB: ~1400 samples, the estimate is within a few %.
    err = abs(site["bytes"] - nbytes) / nbytes
    check(err < 0.15, f"sampled estimate {site['bytes']} vs {nbytes} ({err:.1%})")
    check(rep["totals"]["allocations"] < count * 1.5, "estimate of the count")


def case_python(env):
    py = os.path.realpath(sys.executable)
    # Strings over 512 bytes come from malloc (smaller objects from pymalloc's arenas).
    script = "x = ['a' * 1000 + str(i) for i in range(5000)]\nd = {s: len(s) for s in x}\n"
    envv = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    reps = []
    for k in range(2):
        cap, _ = env.run([py, "-S", "-c", script], out=f"py{k}.tly", env=envv)
        reps.append(env.report(cap))
    a = reps[0]
    check(a["exited"] and not a["truncated"], "python capture complete")
    check(a["totals"]["allocations"] > 1000, f"python allocations {a['totals']['allocations']}")
    check(a["peak"]["bytes"] > 1 << 20, f"python peak {a['peak']}")
    check(a["totals"]["frees"] <= a["totals"]["allocations"], "more frees than allocations")
    check(a["exit"] == reps[1]["exit"],
          f"what python leaves at exit differs between runs: {a['exit']} {reps[1]['exit']}")


def case_text(env):
    cap, _ = env.run([env.prog("tally_prog_alloc"), "exact"])
    text = env.report(cap, fmt="text")
    for want in ("peak heap", "leaks: blocks not freed at exit", "leak_block",
                 "size histogram", "temporary"):
        check(want in text, f"text report lacks {want!r}")
    html = env.report(cap, fmt="html")
    check(html.startswith("<!DOCTYPE html>") and "leak_block" in html, "html report")


def case_valgrind(env):
    vg = shutil.which("valgrind")
    ms_ok = vg is not None
    if not ms_ok:
        print("valgrind not installed: skipped")
        return SKIP
    prog = [env.prog("tally_prog_alloc"), "exact"]
    cap, _ = env.run(prog)
    rep = env.report(cap)
    p = subprocess.run([vg, "--leak-check=full", *prog], capture_output=True, text=True,
                       timeout=240)
    m = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", p.stderr)
    check(m is not None, f"no 'definitely lost' in memcheck's output:\n{p.stderr}")
    vbytes, vblocks = (int(x.replace(",", "")) for x in m.groups())
    check(sum(e["bytes"] for e in rep["leaks"]) == vbytes and
          sum(e["count"] for e in rep["leaks"]) == vblocks,
          f"tally leaks {rep['exit']} vs memcheck {vbytes} bytes in {vblocks} blocks")
    out = os.path.join(env.tmp, "massif.out")
    subprocess.run([vg, "--tool=massif", "--pages-as-heap=no", "--heap-admin=0",
                    "--threshold=0", "--peak-inaccuracy=0.0", f"--massif-out-file={out}", *prog],
                   capture_output=True, text=True, timeout=240, check=True)
    with open(out) as f:
        peaks = [int(x) for x in re.findall(r"^mem_heap_B=(\d+)", f.read(), re.M)]
    mpeak = max(peaks)
    tpeak = rep["peak"]["bytes"]
    check(abs(tpeak - mpeak) <= 0.01 * mpeak, f"peak: tally {tpeak}, massif {mpeak}")
    print(f"leaks: tally {vblocks} blocks {vbytes} bytes = memcheck; peak: tally {tpeak}, "
          f"massif {mpeak}")


def tally_cmd(env, *args, expect_rc=0):
    p = subprocess.run([env.tally, *args], capture_output=True, text=True, timeout=240)
    if expect_rc is not None and p.returncode != expect_rc:
        raise Fail(f"tally {' '.join(args)}: exit {p.returncode}, expected {expect_rc}\n"
                   f"{p.stderr}")
    return p


def diff_json(env, a, b, *opts):
    p = tally_cmd(env, "diff", a, b, "--format", "json", "--top", "100", *opts)
    return json.loads(p.stdout)


def leak_row(d):
    rows = [r for r in d["rows"] if r["frames"] and r["frames"][0]["function"] == "leak_block"]
    check(len(rows) == 1, f"one leak_block row expected: {d['rows']}")
    return rows[0]


def case_diff(env):
    prog = env.prog("tally_prog_alloc")
    a, _ = env.run([prog, "exact"], out="a.tly")
    # A capture against itself: every delta is zero, every row still listed.
    d = diff_json(env, a, a)
    check(d["by"] == "site" and d["at"] == "exit", f"defaults {d['by']} {d['at']}")
    check(all(t["delta"] == 0 and t["a"] == t["b"] for t in d["totals"].values()),
          f"self diff totals {d['totals']}")
    check(d["totals"]["leaked_blocks"]["a"] == 10, f"leaked blocks {d['totals']}")
    check(d["rows"] and all(r["delta_bytes"] == 0 and r["delta_blocks"] == 0 for r in d["rows"]),
          f"self diff rows {d['rows']}")
    check(leak_row(d)["a_blocks"] == 10, "leak_block row of the self diff")
    d = diff_json(env, a, a, "--at", "peak", "--by", "stack")
    check(d["at"] == "peak" and all(r["delta_bytes"] == 0 for r in d["rows"]), "peak self diff")
    check(sum(r["a_bytes"] for r in d["rows"]) == d["totals"]["peak_bytes"]["a"],
          "rows at the peak should sum to the peak")
    # Two runs (two address-space layouts) with 3 and 7 leaked blocks of 100 bytes.
    l3, _ = env.run([prog, "leak", "3"], out="l3.tly")
    l7, _ = env.run([prog, "leak", "7"], out="l7.tly")
    d = diff_json(env, l3, l7)
    line = marker_line(env.src, "prog_alloc.c", "LEAK_LINE")
    r = leak_row(d)
    check(r["frames"][0]["line"] == line and r["frames"][0]["file"].endswith("prog_alloc.c"),
          f"leak row site {r['frames']}")
    check((r["a_blocks"], r["b_blocks"], r["delta_blocks"]) == (3, 7, 4)
          and (r["a_bytes"], r["b_bytes"], r["delta_bytes"]) == (300, 700, 400), f"leak row {r}")
    check(d["rows"][0] is r or abs(d["rows"][0]["delta_bytes"]) >= 400, "rows sorted by |delta|")
    t = d["totals"]
    check(t["leaked_blocks"]["delta"] == 4 and t["leaked_bytes"]["delta"] == 400
          and t["allocations"]["delta"] == 4 and t["bytes_allocated"]["delta"] == 400
          and t["peak_bytes"]["delta"] == 0, f"totals {t}")
    # Reversed: the deltas change sign.
    r = leak_row(diff_json(env, l7, l3))
    check(r["delta_blocks"] == -4 and r["delta_bytes"] == -400, f"reversed {r}")
    # By stack: the leaking stack is named frame by frame, down to main.
    d = diff_json(env, l3, l7, "--by", "stack")
    r = leak_row(d)
    check(r["delta_blocks"] == 4 and any(f["function"] == "main" for f in r["frames"]),
          f"stack row {r}")
    # Text: the totals side by side and the site with its deltas.
    text = tally_cmd(env, "diff", l3, l7).stdout
    check(re.search(r"leaked blocks\s+3\s+7\s+\+4", text) is not None, f"text totals:\n{text}")
    check(re.search(rf"\+400\s+\+4\s+300\s+700\s+3\s+7\s+leak_block \(.*prog_alloc.c:{line}\)",
                    text) is not None, f"text row:\n{text}")
    check(re.search(r"leaked blocks\s+3\s+3\s+\+0", tally_cmd(env, "diff", l3, l3).stdout)
          is not None, "self diff text")


SVG = "{http://www.w3.org/2000/svg}"


def plot(env, cap, out, *opts):
    import xml.etree.ElementTree as ET
    tally_cmd(env, "plot", cap, "-o", out, *opts)
    return ET.parse(out).getroot()


def curve_points(root):
    path = next(e for e in root.iter(SVG + "path") if e.get("id") == "curve")
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+) ([-\d.]+)", path.get("d"))]


def flame_frames(root):
    return [g for g in root.iter(SVG + "g") if g.get("class") == "frame"]


def case_plot(env):
    import xml.etree.ElementTree as ET
    prog = env.prog("tally_prog_alloc")
    cap, _ = env.run([prog, "exact"])
    rep = env.report(cap)
    out = os.path.join(env.tmp, "x.svg")
    tl = plot(env, cap, out)
    fl = ET.parse(os.path.join(env.tmp, "x-flame.svg")).getroot()
    # Memory over time: the peak's value is the report's, and the dot is on the curve.
    peak = next(g for g in tl.iter(SVG + "g") if g.get("id") == "peak")
    pb = rep["peak"]["bytes"]
    check(int(peak.get("data-bytes")) == pb and int(peak.get("data-seq")) == rep["peak"]["seq"],
          f"peak {peak.attrib} vs report {rep['peak']}")
    label = "".join(peak.find(SVG + "text").itertext())
    check(f"({pb} bytes)" in label and "peak" in label, f"peak label {label!r}")
    dot = peak.find(SVG + "circle")
    pts = curve_points(tl)
    top = min(pts, key=lambda p: p[1])
    check(abs(top[1] - float(dot.get("cy"))) < 0.11 and abs(top[0] - float(dot.get("cx"))) < 0.11,
          f"peak dot {dot.attrib} is not the curve's top {top}")
    title = "".join(next(tl.iter(SVG + "text")).itertext())
    check("tally_prog_alloc exact" in title, f"title {title!r}")
    axes = " ".join("".join(t.itertext()) for t in tl.iter(SVG + "text"))
    check("live heap (KiB)" in axes and "time since the start (" in axes, f"axis labels {axes!r}")
    # Flame graph (bytes allocated): the root is the total, its width the picture's,
    # the widths of each level add up to their parent's.
    g = next(e for e in fl.iter(SVG + "g") if e.get("id") == "flame")
    check(int(g.get("data-total")) == rep["totals"]["bytes_allocated"], f"flame total {g.attrib}")
    frames = flame_frames(fl)
    root = frames[0]
    check(root.get("data-depth") == "0", "the root comes first")
    rw = float(root.find(SVG + "rect").get("width"))
    check(abs(rw - float(g.get("data-width"))) < 0.01, f"root width {rw}")
    d1 = [f for f in frames if f.get("data-depth") == "1"]
    check(abs(sum(float(f.find(SVG + "rect").get("width")) for f in d1) - rw) < 0.5,
          "depth-1 widths should add up to the root's")
    def named(fs, fn):
        return [f for f in fs if f.find(SVG + "title").text.startswith(fn + " (")]
    make = named(frames, "make_block")
    line = marker_line(env.src, "prog_alloc.c", "MAKE_LINE")
    sizes = [16 + (i % 100) * 8 for i in range(1000)]
    check(len(make) == 1 and int(make[0].get("data-bytes")) == sum(sizes[:990])
          and f"prog_alloc.c:{line})" in make[0].find(SVG + "title").text, "make_block frame")
    mw = float(make[0].find(SVG + "rect").get("width"))
    check(abs(mw - rw * sum(sizes[:990]) / sum(sizes)) < 0.01, f"make_block width {mw}")
    # --flame exit: only the leaks.
    plot(env, cap, out, "--flame", "exit")
    fl = ET.parse(os.path.join(env.tmp, "x-flame.svg")).getroot()
    leak = named(flame_frames(fl), "leak_block")
    check(len(leak) == 1 and int(leak[0].get("data-bytes")) == rep["exit"]["bytes"]
          and not named(flame_frames(fl), "make_block"), "exit flame graph")
    # HTML: one page holding both pictures, nothing loaded from elsewhere.
    html_path = os.path.join(env.tmp, "x.html")
    tally_cmd(env, "plot", cap, "-o", html_path)
    with open(html_path) as f:
        html = f.read()
    check(html.startswith("<!DOCTYPE html>") and html.count("<svg ") == 2, "html page")
    check(not re.search(r"(src|href)=|@import|url\(", html), "html page loads something")
    # Downsampling: a capture of 10^5 events gives a curve of at most a few thousand
    # points, whose top is still the peak.
    tcap, _ = env.run([env.prog("tally_prog_threads")], out="t.tly")
    trep = env.report(tcap)
    tl = plot(env, tcap, out)
    pts = curve_points(tl)
    check(len(pts) < 7000, f"{len(pts)} points")
    peak = next(g for g in tl.iter(SVG + "g") if g.get("id") == "peak")
    check(int(peak.get("data-bytes")) == trep["peak"]["bytes"], "threads peak")
    check(abs(min(p[1] for p in pts) - float(peak.find(SVG + "circle").get("cy"))) < 0.11,
          "threads peak dot")
    # C++ names (templates: < and >) make well-formed XML.
    cxx = env.prog("tally_prog_cxx")
    if os.path.exists(cxx):
        ccap, _ = env.run([cxx], out="c.tly")
        plot(env, ccap, out)
        fl = ET.parse(os.path.join(env.tmp, "x-flame.svg")).getroot()
        check(any("make_array<Aligned>" in f.find(SVG + "title").text for f in flame_frames(fl)),
              "the template's frame in the flame graph")


def case_badfiles(env):
    prog = env.prog("tally_prog_alloc")
    good, _ = env.run([prog, "leak", "5"], out="good.tly")
    with open(good, "rb") as f:
        data = f.read()
    bad = {"foreign.tly": b"#!/bin/sh\necho not a capture\n" * 10, "empty.tly": b"",
           "short.tly": data[:40]}
    for name, content in bad.items():
        with open(os.path.join(env.tmp, name), "wb") as f:
            f.write(content)
    paths = [os.path.join(env.tmp, n) for n in bad] + [os.path.join(env.tmp, "absent.tly")]
    out = os.path.join(env.tmp, "out.svg")
    for p in paths:
        for args in (("diff", good, p), ("diff", p, good), ("plot", p, "-o", out)):
            r = tally_cmd(env, *args, expect_rc=1)
            check(r.stderr.count("\n") == 1 and r.stderr.startswith(f"tally {args[0]}: ")
                  and os.path.basename(p) in r.stderr, f"{args}: stderr {r.stderr!r}")
            check("Sanitizer" not in r.stderr and r.stdout == "", f"{args}: {r.stderr}")
    check(not os.path.exists(out), "plot of a bad file should write nothing")
    # A capture cut inside its first chunk is read for what it holds, with a note.
    cut = os.path.join(env.tmp, "cut.tly")
    with open(cut, "wb") as f:
        f.write(data[:4096 + 2000])
    d = diff_json(env, good, cut)
    check(d["b"]["truncated"] and not d["a"]["truncated"], f"truncated flags {d['b']}")
    tally_cmd(env, "plot", cut, "-o", out)
    import xml.etree.ElementTree as ET
    ET.parse(out)
    # Usage errors: status 2.
    for args in (("diff", good), ("diff", good, good, good), ("diff", good, good, "--by", "x"),
                 ("plot", good), ("plot", good, "-o", os.path.join(env.tmp, "x.png")),
                 ("plot", good, "-o", out, "--flame", "x")):
        tally_cmd(env, *args, expect_rc=2)
    r = tally_cmd(env, "plot", good, "-o", "/no/such/dir/x.svg", expect_rc=1)
    check(r.stderr.count("\n") == 1 and "/no/such/dir/x.svg" in r.stderr, r.stderr)


def case_snapshot(env):
    prog = env.prog("tally_prog_dump")
    big = marker_line(env.src, "prog_dump.c", "BIG_LINE")
    small = marker_line(env.src, "prog_dump.c", "SMALL_LINE")

    def dump(name, nframes, nbig):
        out = os.path.join(env.tmp, name)
        p = subprocess.run([prog, out, str(nframes), str(nbig)], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 0, f"prog_dump {name}: exit {p.returncode}\n{p.stderr}")
        return out

    a = dump("a.tly", 1, 3)
    rep = env.report(a)
    check(rep["snapshot"] and not rep["truncated"], f"a whole snapshot dump: {rep}")
    check(rep["frames"] == 1, f"traceback limit {rep['frames']}")
    check(rep["totals"]["allocations"] == 8 and rep["totals"]["bytes_allocated"] == 3320,
          f"totals {rep['totals']}")
    check(rep["exit"] == {"bytes": 3320, "blocks": 8}, f"live in the snapshot {rep['exit']}")
    lines = {(e["stack"][0]["line"], e["count"], e["bytes"]) for e in rep["leaks"]}
    check(lines == {(big, 3, 3000), (small, 5, 320)}, f"sites {rep['leaks']}")
    check(all(e["stack"][0]["file"].endswith("prog_dump.c") for e in rep["leaks"]),
          "sites name prog_dump.c")
    check("snapshot dump" in env.report(a, fmt="text"), "the text report says snapshot dump")

    # Native frames: symbolised from the dump's modules, down to main.
    n8 = dump("n8.tly", 8, 7)
    rep = env.report(n8)
    leak = leak_with(rep, "make_big")
    check(leak is not None and leak["count"] == 7 and leak["bytes"] == 7000, f"make_big {leak}")
    check(leak["stack"][0]["line"] == big, f"make_big line {leak['stack'][0]}")
    check(any(f["function"] == "main" for f in leak["stack"]), "main in the dumped stack")

    # diff of two dumps: the big site grew by 4 blocks.
    b = dump("b.tly", 1, 7)
    d = diff_json(env, a, b)
    check(d["a"]["snapshot"] and d["b"]["snapshot"], "diff sees two snapshots")
    rows = [r for r in d["rows"] if r["frames"][0]["line"] == big]
    check(len(rows) == 1 and (rows[0]["a_blocks"], rows[0]["b_blocks"]) == (3, 7)
          and rows[0]["delta_bytes"] == 4000, f"big row {d['rows']}")
    check(d["totals"]["leaked_blocks"]["delta"] == 4, f"totals {d['totals']}")
    # diff of a dump and a tally run capture works too.
    cap, _ = env.run([env.prog("tally_prog_alloc"), "leak", "3"], out="l3.tly")
    d = diff_json(env, cap, b)
    check(d["totals"]["leaked_blocks"]["b"] == 12, f"dump against capture {d['totals']}")

    # A cut dump is reported as truncated.
    with open(a, "rb") as f:
        data = f.read()
    for cut in (len(data) - 100, 4096 + 4096 // 2):
        short = os.path.join(env.tmp, f"cut{cut}.tly")
        with open(short, "wb") as f:
            f.write(data[:cut])
        check(env.report(short)["truncated"], f"a dump cut at {cut} is truncated")


class HtmlReport(html.parser.HTMLParser):
    """The HTML report parsed: tags must nest and close (void elements aside); each
    table's rows are kept as lists of cell texts, under the id of the <h2> before it."""
    VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.counts = [], [], {}
        self.tables, self.section, self.row, self.cell = {}, None, None, None
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if tag == "h2":
            self.section = dict(attrs).get("id")
        elif tag == "table":
            if self.section in self.tables:
                self.errors.append(f"two tables in section {self.section}")
            self.tables[self.section] = []
        elif tag == "tr" and self.section in self.tables:
            self.row = []
            self.tables[self.section].append(self.row)
        elif tag in ("td", "th"):
            self.cell = []

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]} at {self.getpos()}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


SECTIONS = ["summary", "peak_by_bytes", "peak_by_count", "allocated_by_bytes",
            "allocated_by_count", "exit_by_bytes", "exit_by_count", "temporary_by_count",
            "leaks", "histogram"]


def html_report(env, cap, top=50):
    p = subprocess.run([env.tally, "report", cap, "--format", "html", "--top", str(top)],
                       capture_output=True, timeout=240)
    if p.returncode != 0:
        raise Fail(f"tally report --format html {cap}: exit {p.returncode}\n{p.stderr}")
    text = p.stdout.decode("utf-8")     # fails on bytes that are not UTF-8
    doc = HtmlReport(text)
    check(not doc.errors, f"html report not well-formed: {doc.errors[:5]}")
    check(text.startswith("<!DOCTYPE html>"), "html report: no doctype")
    check(sorted(doc.tables) == sorted(SECTIONS) and doc.counts.get("table") == len(SECTIONS),
          f"html report: tables {sorted(doc.tables)}, {doc.counts.get('table')} <table>")
    check(doc.counts.get("svg") == 1, f"html report: {doc.counts.get('svg')} <svg>")
    check("http" not in text.lower() and not re.search(r"(src|href)=|@import|url\(", text),
          "html report names a URL or loads something")
    return text, doc


def body_rows(doc, section):
    return doc.tables[section][1:]      # the first row is the header


def case_html(env):
    cap, _ = env.run([env.prog("tally_prog_alloc"), "exact"])
    sizes = [16 + (i % 100) * 8 for i in range(1000)]
    text, doc = html_report(env, cap)
    summary = {r[0]: r[1] for r in doc.tables["summary"]}
    check(summary.get("allocations") == "1000" and summary.get("frees") == "990"
          and summary.get("peak heap") == str(sum(sizes))
          and summary.get("at exit") == str(sum(sizes[990:])), f"summary {summary}")
    check(f'<g id="peak" data-bytes="{sum(sizes)}"' in text, "the chart marks the peak")
    make, leak = (marker_line(env.src, "prog_alloc.c", m) for m in ("MAKE_LINE", "LEAK_LINE"))
    rows = body_rows(doc, "allocated_by_count")
    check(any(r[0] == str(sum(sizes[:990])) and r[1] == "990" and "make_block" in r[2]
              and f"prog_alloc.c:{make}" in r[2] and "main" in r[2] for r in rows),
          f"make_block row (bytes, blocks, site with its stack) in {rows}")
    rows = body_rows(doc, "leaks")
    check(len(rows) == 1 and rows[0][:2] == [str(sum(sizes[990:])), "10"]
          and rows[0][2].startswith("leak_block") and f"prog_alloc.c:{leak}" in rows[0][2]
          and "main" in rows[0][2], f"leak rows {rows}")
    check(doc.counts.get("details", 0) >= 7 and doc.counts.get("details") == doc.counts["summary"],
          "each site and leak unfolds to its stack")
    hist = body_rows(doc, "histogram")
    check(sum(int(r[1]) for r in hist) == 1000 and sum(int(r[2]) for r in hist) == sum(sizes),
          f"histogram {hist}")
    check(text.count('<div style="width:100.0%"></div>') == 1, "one full-width histogram bar")
    # --top 1 is honoured, and an empty ranking still has its table.
    _, doc1 = html_report(env, cap, top=1)
    for sec in SECTIONS[1:8]:
        check(len(body_rows(doc1, sec)) == 1, f"--top 1: {sec} {doc1.tables[sec]}")
    check(body_rows(doc1, "temporary_by_count")[0] == ["none"] or "make_block" in
          body_rows(doc1, "temporary_by_count")[0][2], "temporary table")
    # A file name with & < > quotes and UTF-8 from a snapshot dump: escaped and intact.
    dump = os.path.join(env.tmp, "odd.tly")
    p = subprocess.run([env.prog("tally_prog_dump"), dump, "1", "2", "odd"], capture_output=True,
                       timeout=60)
    check(p.returncode == 0, f"prog_dump odd: exit {p.returncode}\n{p.stderr}")
    text, doc = html_report(env, dump)
    odd = "dir/x<&>y \"q\" 'a' \u00e9.c"
    check("x&lt;&amp;&gt;y &quot;q&quot;" in text and "x<&>y" not in text
          and "\u00e9.c:42" in text, "the odd file name is escaped, its UTF-8 kept")
    rows = body_rows(doc, "leaks")
    check(any(r[:2] == ["777", "1"] and r[2].startswith(f"{odd}:42") for r in rows),
          f"odd leak row {rows}")
    check("Snapshot dump" in text and doc.tables["summary"][-1][0] == "in the snapshot",
          "the page says snapshot dump")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")
         and name != "case_death"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tally", required=True)
    ap.add_argument("--progs", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    env = Env(args)
    try:
        rc = CASES[args.case](env) or 0
    except Fail as e:
        print(f"FAIL {args.case}: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(env.tmp, ignore_errors=True)
    print(f"{args.case}: {'skipped' if rc == SKIP else 'ok'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
