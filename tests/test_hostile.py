"""The hostile-image suite, seeded slice (issue "Dom0 safety", its Proof): for every
filesystem and volume format, a small bootable guest made by the real tools, then mutants
and hostile configs through the whole command. ``make fuzz`` runs the full suite.

Every run must end within bounds with exit 0 or 1, no traceback or internal error,
nothing left in the output directory and an empty output file on failure, and the image
unchanged (tests/hostile.py has the engine and the checks). Most mutant runs are forked
children calling pygrub.cli.main; a sample is the real ``python -m pygrub``.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import hostile
import pytest
from hostile import BUILDERS, Field, Guest, Mutant, Mutator, Run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Fixed, so that CI runs the same mutants every time.
SEED = 20260508
MUTANTS_PER_GUEST = 30
CASES_DIR = Path(__file__).parent / "fuzz_cases"


@pytest.fixture(scope="session")
def work() -> Iterator[Path]:
    """Scratch space for mutants, in memory where there is a tmpfs."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="pygrub-hostile-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def guests(tmp_path_factory) -> dict[str, Guest]:
    built = hostile.build_guests(tmp_path_factory.mktemp("guests"))
    hostile.warm_imports()
    return built


def new_run(work: Path, label: str, image: Path, **kw: object) -> Run:
    workdir = Path(
        tempfile.mkdtemp(prefix=label.replace(" ", "-").replace("/", "_") + "-", dir=work)
    )
    return hostile.prepare(Run(label, image, workdir, **kw))  # type: ignore[arg-type]


def mutant_run(work: Path, guest: Guest, mutant: Mutant, in_process: bool = True) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix=f"{guest.name}-{mutant.seed}-", dir=work))
    image = workdir / "image"
    hostile.write_mutant(guest, mutant, image)
    run = Run(f"{guest.name} #{mutant.seed}", image, workdir, env=dict(guest.env))
    run.in_process = in_process
    return hostile.prepare(run)


def report(runs: list[Run], mutants: dict[str, Mutant] | None = None) -> list[str]:
    """One line per run that broke a rule (with the mutant, so it can be replayed)."""
    lines = []
    for run in runs:
        if run.problems:
            what = mutants[run.label].describe() if mutants else run.label
            lines.append(f"{what}: {run.problems}")
    return lines


# ---------------------------------------------------------------- the guests themselves


def test_every_pristine_guest_boots_what_it_holds(guests, work):
    """The oracle for each base image: what mkfs & co. were given (or, for the committed
    ReiserFS/ZFS images, the digests the kernel's own mount gave)."""
    runs = [new_run(work, f"{n} pristine", g.image, in_process=False) for n, g in guests.items()]
    wrong = {}
    for run in hostile.execute(runs):
        guest = guests[run.label.split()[0]]
        got = (
            hostile.content_digest(Path(os.fsdecode(run.items["kernel"]))) if run.items else None,
            hostile.content_digest(Path(os.fsdecode(run.items["ramdisk"])))
            if "ramdisk" in run.items
            else None,
            run.items.get("args", b"").decode(),
        )
        if run.problems or run.status != 0 or got != guest.expect:
            wrong[run.label] = (run.status, run.problems, run.stderr[-300:])
    assert not wrong


def test_guests_cover_every_format():
    formats = {
        "ext2", "ext3", "ext4", "fat12", "fat16", "fat32", "iso9660", "xfs-v5", "xfs-v4",
        "btrfs", "squashfs-gzip", "erofs", "ufs1", "ufs2", "reiserfs", "zfs", "f2fs", "mbr", "gpt", "vtoc",
        "hybrid-iso", "lvm", "md", "qcow2",
    }  # fmt: skip
    assert formats <= set(BUILDERS)


# ---------------------------------------------------------------- seeded mutants


@pytest.mark.parametrize("name", list(BUILDERS))
def test_seeded_mutants(guests, work, name):
    guest = guests[name]
    mutator = Mutator(guest)
    try:
        mutants = {}
        runs = []
        for index in range(MUTANTS_PER_GUEST):
            mutant = mutator.mutant(SEED + index)
            # One of them through the real command, the rest forked.
            run = mutant_run(work, guest, mutant, in_process=index != 0)
            mutants[run.label] = mutant
            runs.append(run)
        done = list(hostile.execute(runs))
    finally:
        mutator.close()
    assert not report(done, mutants)
    for run in done:
        shutil.rmtree(run.workdir, ignore_errors=True)


def test_mutants_are_reproducible(guests):
    mutator = Mutator(guests["ext4"])
    try:
        first = [mutator.mutant(seed).to_json() for seed in range(20)]
        again = [mutator.mutant(seed).to_json() for seed in range(20)]
    finally:
        mutator.close()
    assert first == again
    assert Mutant.from_json(json.loads(json.dumps(first[3]))).to_json() == first[3]


def test_runas_sample(guests, work):
    """Mutants through the sandboxed command libxl's restricted mode runs (needs root)."""
    if os.geteuid() != 0:
        pytest.fail("--runas needs root (.ci/run runs the suite as root)")
    runs, mutants = [], {}
    for index, name in enumerate(("ext4", "fat16", "squashfs-zstd", "qcow2-zlib")):
        mutator = Mutator(guests[name])
        mutant = mutator.mutant(SEED + 1000 + index)
        mutator.close()
        run = mutant_run(work, guests[name], mutant, in_process=False)
        run.extra_args = ["--runas=65534"]
        mutants[run.label] = mutant
        runs.append(run)
    assert not report(list(hostile.execute(runs)), mutants)


# ---------------------------------------------------------------- hostile configs


@pytest.fixture(scope="module")
def config_runs(tmp_path_factory) -> dict[str, tuple[hostile.ConfigCase, Run]]:
    """Every case built and run once (in parallel); the tests below read the outcomes."""
    build = tmp_path_factory.mktemp("configs")
    cases = {case.name: case for case in hostile.config_cases()}
    runs = []
    for case in cases.values():
        image = hostile.build_case(build, case)
        run = Run(case.name, image, build / f"{case.name}.run", in_process=False)
        run.contents = hostile.case_contents(case)
        runs.append(hostile.prepare(run))
    outcomes = {}
    for run in hostile.execute(runs):
        run.problems[:] = hostile.case_problems(cases[run.label], run)
        outcomes[run.label] = (cases[run.label], run)
    return outcomes


@pytest.mark.parametrize("name", [case.name for case in hostile.config_cases()])
def test_hostile_config(config_runs, name):
    case, run = config_runs[name]
    assert not run.problems, run.stderr.decode(errors="replace")[-500:]


def test_symlinks_never_read_host_files(config_runs):
    """Whatever a symlink or path names, what is extracted comes from the guest."""
    for name, (_case, run) in config_runs.items():
        if "symlink" in name or "host" in name or "escape" in name:
            for key in ("kernel", "ramdisk"):
                if key in run.items:
                    data = Path(os.fsdecode(run.items[key])).read_bytes()
                    assert data != Path("/etc/passwd").read_bytes(), name


# ---------------------------------------------------------------- the checks catch breakage


def test_the_checks_catch_what_they_must(tmp_path):
    """The oracle is not vacuous: each rule, broken on purpose, is reported."""
    image = tmp_path / "image"
    image.write_bytes(b"x" * 4096)

    def judged(
        status: int, stderr: bytes = b"", output: bytes = b"", stray: bool = False
    ) -> list[str]:
        run = hostile.prepare(Run("self-test", image, tmp_path / f"w{status}{len(stderr)}{stray}"))
        run.status = status
        (run.workdir / "stdout").write_bytes(b"")
        (run.workdir / "stderr").write_bytes(stderr)
        run.output_file.write_bytes(output)
        if stray:
            (run.out_dir / "boot_kernel.abcdefgh").write_bytes(b"k")
        hostile.check(run)
        return run.problems

    assert judged(1, b"pygrub: error: no\n") == []
    assert "internal error" in judged(1, b"pygrub: error: internal error: KeyError: 3\n")[0]
    assert "left in the output directory" in judged(1, b"pygrub: error: x\n", stray=True)[0]
    assert "output file not empty" in judged(1, b"pygrub: error: x\n", b"kernel x\0\0")[0]
    assert "exit status 2" in judged(2, b"pygrub: error: x\n")[0]
    assert "malformed output" in judged(0, b"", b"kernel /elsewhere\0")[0]
    assert "not a new file" in judged(0, b"", b"kernel /etc/passwd\0\0")[0]
    with open(image, "r+b") as f:
        run = hostile.prepare(Run("changed", image, tmp_path / "changed"))
        run.status = 1
        (run.workdir / "stdout").write_bytes(b"")
        (run.workdir / "stderr").write_bytes(b"pygrub: error: x\n")
        f.write(b"y")
    hostile.check(run)
    assert run.problems == ["the image changed"]


# ---------------------------------------------------------------- hypothesis


GUESTS_FOR_HYPOTHESIS = ["ext4-nocsum", "fat12", "iso9660", "xfs-v4", "btrfs-mixed",
    "squashfs-xz", "erofs-lz4hc", "ufs2", "f2fs-features", "mbr", "gpt", "lvm", "md", "qcow2-zlib"]  # fmt: skip


@st.composite
def mutants(draw: st.DrawFn, guests: dict[str, Guest]) -> tuple[Guest, Mutant]:
    """Edits in a guest's metadata (flips, absurd field values, zeroed blocks), perhaps a
    cut, perhaps checksums fixed: hypothesis shrinks a failure to its fewest edits."""
    guest = guests[draw(st.sampled_from(GUESTS_FOR_HYPOTHESIS))]
    mutant = Mutant(guest.name, draw(st.integers(0, 2**31)))
    size = guest.size
    for _ in range(draw(st.integers(1, 4))):
        start, end = draw(st.sampled_from(guest.regions))
        at = draw(st.integers(start, end - 1))
        kind = draw(st.sampled_from(["flip", "field", "zero", "value"]))
        if kind == "field" and guest.fields:
            f: Field = draw(st.sampled_from(guest.fields))
            value = draw(
                st.sampled_from(hostile.absurd_values(f.width, size))
                | st.integers(0, (1 << (8 * f.width)) - 1)
            )
            order = "little" if f.order == "<" else "big"
            mutant.edits.append((f.offset, value.to_bytes(f.width, order)))
        elif kind == "zero":
            block = draw(st.sampled_from([512, 4096]))
            mutant.edits.append((at - at % block, bytes(block)))
        elif kind == "value":
            mutant.edits.append((at, draw(st.binary(min_size=1, max_size=8))))
        else:
            with open(guest.image, "rb") as f_:
                f_.seek(at)
                old = f_.read(1) or b"\0"
            mutant.edits.append((at, bytes([old[0] ^ (1 << draw(st.integers(0, 7)))])))
    if draw(st.integers(0, 9)) == 0:
        mutant.truncate = draw(st.integers(0, size))
    mutant.fix = bool(guest.fixers) and draw(st.booleans())
    mutant.what.append(f"hypothesis edits {[(hex(o), d.hex()) for o, d in mutant.edits]}")
    return guest, mutant


@pytest.fixture(scope="module")
def hypothesis_guests(guests) -> dict[str, Guest]:
    return {name: guests[name] for name in GUESTS_FOR_HYPOTHESIS}


def test_hypothesis_mutants(hypothesis_guests, work):
    @settings(
        max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(st.data())
    def check_one(data: st.DataObject) -> None:
        guest, mutant = data.draw(mutants(hypothesis_guests))
        (run,) = hostile.execute([mutant_run(work, guest, mutant)])
        shutil.rmtree(run.workdir, ignore_errors=True)
        assert not run.problems, mutant.describe()

    check_one()


# ---------------------------------------------------------------- kept crashers


def fuzz_cases() -> list:
    params = []
    for meta in sorted(CASES_DIR.glob("*.json")):
        record = json.loads(meta.read_text())
        marks = []
        if record.get("xfail"):
            marks.append(pytest.mark.xfail(strict=True, reason=record["xfail"]))
        params.append(pytest.param(meta, id=meta.stem, marks=marks))
    return params


@pytest.mark.parametrize("meta", fuzz_cases())
def test_kept_fuzz_case(meta: Path, work):
    """A mutant the fuzzer found breaking a rule, replayed through the real command."""
    record = json.loads(meta.read_text())
    workdir = Path(tempfile.mkdtemp(prefix=meta.stem + "-", dir=work))
    image = workdir / "image"
    with lzma.open(meta.with_name(meta.stem + ".img.xz")) as fin, open(image, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    run = hostile.prepare(Run(meta.stem, image, workdir, env=record.get("env", {})))
    run.in_process = False
    run.extra_args = record.get("extra_args", [])
    (done,) = hostile.execute([run])
    assert not done.problems, f"{record['describe']}: {done.stderr.decode(errors='replace')[-300:]}"
