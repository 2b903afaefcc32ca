#!/usr/bin/env python3
"""The architecture's rules (docs/ARCHITECTURE.md), checked on the source tree.

    python3 tests/structure.py SOURCE_DIR

Fails, naming each breach, when:
  - the program (src/main.c, cli.c, settings.c, device.c, cmd_*.c, program.h, cli.h) calls
    HDF5 or MPI itself (an H5 or MPI_ identifier), or main.c has 300 lines or more;
  - a file outside the engine's library includes one of its private headers: the program,
    src/dist, io/ and jobs/ include only pcn.h, pcn_dist.h and pcn_io.h (and their own
    private headers); of tests/, only the white-box tests CMake links to pcn_whitebox;
  - a file of the libraries reads the environment (getenv outside the programs);
  - src/train.c holds an OpenMP pragma (the CPU backend owns its threads);
  - a C source file of src/, io/, jobs/bench/ or tests/ is over 800 lines, or a function
    there over 60.
A rule that finds nothing to check (a file missing) fails too, so the test cannot pass by
looking at nothing.
"""
import glob
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
PROGRAM = ["src/main.c", "src/cli.c", "src/settings.c", "src/device.c", "src/cmd_train.c",
           "src/cmd_eval.c", "src/program.h", "src/cli.h"]
PROGRAM_MAINS = PROGRAM + ["io/pcn_convert_main.c", "jobs/bench/bench_engine.c"]
PUBLIC = {"pcn.h", "pcn_dist.h", "pcn_io.h"}
WHITEBOX = {"tests/test_backend.c", "tests/test_rows.c", "tests/test_devpath.c",
            "tests/emu_device.c", "tests/emu_device.h",
            "tests/test_dist_learn.c", "tests/test_gpu.c", "tests/test_disc.c",
            "tests/test_disc_golden.c", "tests/test_disc_train.c"}
MAX_FILE, MAX_FUNCTION = 800, 60

breaches = []


def rel(path):
    return os.path.relpath(path, ROOT)


def read(name):
    path = os.path.join(ROOT, name)
    if not os.path.exists(path):
        breaches.append(f"{name}: missing (the rules cannot be checked)")
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def code_lines(text):
    """The text without comments and string literals, line structure kept."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def sources(*patterns):
    found = []
    for p in patterns:
        found += sorted(glob.glob(os.path.join(ROOT, p)))
    if not found:
        breaches.append(f"{patterns}: no files (the rules cannot be checked)")
    return found


def check_program():
    for name in PROGRAM:
        text = code_lines(read(name))
        for n, line in enumerate(text.split("\n"), 1):
            if re.search(r"\bH5[A-Za-z_]*\s*\(|\bMPI_[A-Za-z_]+", line):
                breaches.append(f"{name}:{n}: HDF5 or MPI in the program: {line.strip()}")
    lines = read("src/main.c").count("\n")
    if lines >= 300:
        breaches.append(f"src/main.c: {lines} lines (the program's main stays under 300)")


def private_engine_headers():
    return {os.path.basename(h) for h in sources("src/*.h")} - PUBLIC - {"program.h", "cli.h"}


def check_includes():
    private = private_engine_headers() | {"pcn_impl.h"}
    outside = [f for f in sources("io/*.c", "io/*.h", "jobs/bench/*.c", "src/dist/*.c",
                                  "src/dist/*.h", "tests/*.c", "tests/*.h", "tests/cli/*.c")]
    outside += [os.path.join(ROOT, p) for p in PROGRAM]
    for path in outside:
        name = rel(path)
        if name in WHITEBOX:
            continue
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if m and os.path.basename(m.group(1)) in private:
                    breaches.append(f"{name}:{n}: includes the engine's private {m.group(1)}")


def check_library():
    library = sources("src/*.c", "src/gpu/*.c", "src/gpu/*.cu", "src/dist/*.c", "io/*.c")
    for path in library:
        name = rel(path)
        if name in PROGRAM_MAINS:
            continue
        with open(path, errors="replace") as f:
            text = code_lines(f.read())
        for n, line in enumerate(text.split("\n"), 1):
            if re.search(r"\b(secure_)?getenv\s*\(", line):
                breaches.append(f"{name}:{n}: the library reads the environment: {line.strip()}")
    for n, line in enumerate(read("src/train.c").split("\n"), 1):
        if re.match(r"\s*(#\s*pragma\s+omp|_Pragma\s*\(\s*\"omp)", line):
            breaches.append(f"src/train.c:{n}: an OpenMP pragma in the trainer")


def functions(text):
    """(name, first line, lines) of every function defined at file scope."""
    lines = text.split("\n")
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        head = re.match(r"^[A-Za-z_][^;=]*?\b([A-Za-z_]\w*)\s*\(", line)
        if head and not re.match(r"^(typedef|struct|enum|union|return|else|if|for|while)\b", line):
            j = i
            while j < len(lines) and "{" not in lines[j] and not lines[j].rstrip().endswith(";"):
                j += 1
            if j < len(lines) and "{" in lines[j] and not lines[j].rstrip().endswith(";"):
                depth, k = 0, j
                while k < len(lines):
                    depth += lines[k].count("{") - lines[k].count("}")
                    if depth <= 0:
                        break
                    k += 1
                found.append((head.group(1), i + 1, k - i + 1))
                i = k + 1
                continue
        i += 1
    return found


def check_sizes():
    counted = 0
    for path in sources("src/*.c", "src/*.h", "src/dist/*", "src/gpu/*", "io/*.c", "io/*.h",
                        "jobs/bench/*.c", "tests/*.c", "tests/*/*.c"):
        name = rel(path)
        with open(path, errors="replace") as f:
            text = f.read()
        n = text.count("\n")
        if n > MAX_FILE:
            breaches.append(f"{name}: {n} lines (at most {MAX_FILE})")
        for func, line, length in functions(code_lines(text)):
            counted += 1
            if length > MAX_FUNCTION:
                breaches.append(f"{name}:{line}: {func} is {length} lines (at most "
                                f"{MAX_FUNCTION})")
    if counted < 100:
        breaches.append(f"only {counted} functions found: the function scan is broken")


check_program()
check_includes()
check_library()
check_sizes()
for b in breaches:
    print("BREACH", b)
print(f"structure: {len(breaches)} breach{'es' if len(breaches) != 1 else ''}")
sys.exit(1 if breaches else 0)
