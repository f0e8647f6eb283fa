"""`swindex derived`: the models derived from SmolLM2-135M-Instruct, listed and checked against a local Hub stand-in.

The stand-in (tests/hub_standin.py) serves a few hundred repositories built from the real SmolLM2 GGUF,
each with its planted truth judged from its bytes by gguf's and safetensors' own readers.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hub_standin
from hub_standin import BASE, StandIn

pytest.importorskip("huggingface_hub")
pytest.importorskip("gguf")
pytest.importorskip("safetensors")

from swindex import lookup  # noqa: E402
from swindex.checkpoint import judge, weights_to_check  # noqa: E402
from swindex.derived import KINDS, DerivedModel, ScanState, Target, check_target, list_derived, scan  # noqa: E402
from swindex.derived.scan import state_key  # noqa: E402
from swindex.errors import SwindexError  # noqa: E402
from swindex.records import Entry  # noqa: E402

MEGABYTE = 1 << 20
CHANGED = judge(1.0, 0.5).verdict  # what check calls a weight there at half strength: only its name is taken
DEADLINE = 4.0


@pytest.fixture(scope="module")
def entry() -> Entry:
    return lookup(BASE)


@pytest.fixture(scope="module")
def served(smollm2_gguf: Path, entry: Entry) -> tuple[list[hub_standin.Repo], dict[str, bytes]]:
    recorded = [claim.value for claim in weights_to_check(entry)]
    return hub_standin.repositories(str(smollm2_gguf), recorded), hub_standin.blobs(str(smollm2_gguf))


@pytest.fixture(scope="module")
def hub(served: tuple[list[hub_standin.Repo], dict[str, bytes]]) -> Iterator[StandIn]:
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch, StandIn(*served) as standin:
        patch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests run offline; this server is local
        yield standin


@pytest.fixture(scope="module")
def scanned(hub: StandIn, entry: Entry) -> tuple[list, float]:
    """One scan of everything served, shared by the tests that read its results: (results, seconds)."""
    started = time.monotonic()
    results = list(scan(list_derived(BASE, endpoint=hub.url), entry, workers=8, deadline=DEADLINE, endpoint=hub.url))
    return results, time.monotonic() - started


def truth(hub: StandIn) -> dict[tuple[str, str | None], str]:
    """Each served checkpoint's planted outcome, the in-between one under the name check's reports give it."""
    names = {"changed": CHANGED}
    return {
        (repo.id, file): names.get(outcome, outcome)
        for repo in hub.repos.values()
        for file, outcome in repo.truth.items()
    }


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_listed_whole_through_its_pages(hub: StandIn, kind: str) -> None:
    served = hub.derived(kind, BASE)
    pages = hub.served.listing_pages
    listed = list(list_derived(BASE, kinds=[kind], endpoint=hub.url))
    assert [m.id for m in listed] == [r.id for r in served]
    assert {m.kind for m in listed} == {kind}
    assert hub.served.listing_pages - pages == max(1, math.ceil(len(served) / hub.page_size))


def test_a_listed_model_carries_its_downloads_date_commit_and_files(hub: StandIn) -> None:
    listed = {m.id: m for m in list_derived(BASE, endpoint=hub.url)}
    assert len(listed) == len(hub.repos)
    for repo in hub.repos.values():
        model = listed[repo.id]
        assert (model.sha, model.downloads, model.last_modified) == (repo.sha, repo.downloads, repo.last_modified[:10])
        assert model.files == tuple(sorted(repo.files))
        assert (model.gated, model.remote_code) == (repo.gated, "custom_code" in repo.tags)


def test_every_served_checkpoint_gets_its_planted_verdict(hub: StandIn, scanned: tuple[list, float]) -> None:
    results, _ = scanned
    expected = truth(hub)
    found = {(r.id, r.file): r.verdict or r.skipped for r in results}
    assert len(results) == len(found) == len(expected)
    wrong = {key: (expected[key], found.get(key)) for key in expected if found.get(key) != expected[key]}
    assert not wrong
    assert {"kept", "lost", CHANGED} <= set(found.values())  # the set exercises every verdict


def test_a_safetensors_checkpoint_costs_kilobytes_and_a_gguf_little_more_than_its_header(
    hub: StandIn, scanned: tuple[list, float], smollm2_gguf: Path
) -> None:
    results, _ = scanned
    judged = [r for r in results if r.verdict]
    assert all(0 < r.bytes_read < 64 * 1024 for r in judged if r.file is None)
    headers = hub_standin.gguf_headers(str(smollm2_gguf))
    for result in (r for r in judged if r.file is not None):
        header = headers[hub.repos[result.id].files[result.file]]
        assert header < result.bytes_read <= 2 * header + 64 * 1024  # header reads double in size from 16 KB
    assert max(headers.values()) > MEGABYTE  # the real file's header (its tokenizer) is among them
    assert statistics.median(r.bytes_read for r in judged) < 64 * 1024


def test_what_the_server_sent_is_what_the_checks_counted_and_little_more(
    hub: StandIn, scanned: tuple[list, float]
) -> None:
    results, _ = scanned
    judged = [r for r in results if r.verdict]
    for repo in {r.id for r in judged}:  # the model info and redirects are the difference
        sent = hub.served.bytes_by_repo[repo]
        counted = sum(r.bytes_read for r in judged if r.id == repo)
        checks = sum(1 for r in judged if r.id == repo)
        assert counted <= sent <= counted + checks * 8 * 1024


def test_the_rate_limited_repository_is_retried_after_the_time_it_asked(
    hub: StandIn, scanned: tuple[list, float]
) -> None:
    results, _ = scanned
    (result,) = [r for r in results if r.id.endswith("-rate-limited")]
    assert result.verdict == "kept"
    times = hub.served.retry_at[result.id]
    assert hub.served.retried[result.id] == hub.rate_limit
    assert all(
        later - earlier >= 0.9
        for earlier, later in zip(times[: hub.rate_limit + 1], times[1 : hub.rate_limit + 1], strict=False)
    )


def test_a_slow_server_costs_one_worker_no_more_than_the_deadline(hub: StandIn, entry: Entry) -> None:
    slow = next(m for m in list_derived(BASE, kinds=["finetune"], endpoint=hub.url) if m.id.endswith("-slow"))
    kept = [m for m in list_derived(BASE, kinds=["merge"], endpoint=hub.url)][:3]
    started = time.monotonic()
    results = list(scan([slow, *kept], entry, workers=1, deadline=1.5, endpoint=hub.url))
    elapsed = time.monotonic() - started
    assert [r.id for r in results] == [slow.id, *(m.id for m in kept)]
    assert (results[0].skipped, results[0].verdict) == ("could not read", None)
    assert "1.5 s deadline" in results[0].reason
    assert results[0].seconds < 1.5 + 0.5
    assert all(r.verdict for r in results[1:])
    assert elapsed < 1.5 + 0.5 + 3 * 2.0


@pytest.mark.slow
def test_a_scan_killed_half_way_resumes_with_nothing_checked_twice(hub: StandIn, entry: Entry, tmp_path: Path) -> None:
    state_file = tmp_path / "scan.jsonl"
    command = [
        sys.executable,
        "-m",
        "swindex",
        "derived",
        BASE,
        "--check",
        "--kind",
        "quantized",
        "--state",
        str(state_file),
        "--workers",
        "2",
    ]
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        lines = 1 + 30  # the header, then 30 finished checks
        while time.monotonic() < deadline and (not state_file.exists() or state_file.read_text().count("\n") < lines):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    with ScanState(state_file, BASE) as state:
        before = set(state.done)
    targets = {(r.id, f) for r in hub.derived("quantized", BASE) for f in r.truth}
    assert 30 <= len(before) < len(targets)  # killed half-way
    infos = Counter(hub.served.infos_by_repo)
    with ScanState(state_file, BASE) as state:
        again = list(
            scan(
                list_derived(BASE, kinds=["quantized"], endpoint=hub.url),
                entry,
                workers=2,
                deadline=DEADLINE,
                state=state,
                endpoint=hub.url,
            )
        )
        recorded = [r.key for r in state.records()]
    assert not {r.key for r in again} & before
    asked_again = {repo for repo, count in hub.served.infos_by_repo.items() if count > infos[repo]}
    finished = {
        repo.id
        for repo in hub.derived("quantized", BASE)
        if all(state_key(repo.id, repo.sha, f) in before for f in repo.truth)
    }
    assert finished and not asked_again & finished  # the server was not even asked about a repository already done
    assert len(recorded) == len(set(recorded)) == len(targets)


def test_a_torn_last_line_is_cut_and_its_check_done_again(tmp_path: Path) -> None:
    path = tmp_path / "scan.jsonl"
    path.write_text(
        json.dumps({"scan": BASE, "version": 1})
        + "\n"
        + json.dumps({"id": "a/b", "revision": "1" * 40, "file": None})
        + "\n"
        + '{"id": "a/c", "rev'
    )
    with ScanState(path, BASE) as state:
        assert state.done == {f"a/b@{'1' * 40}:"}
    assert path.read_text().endswith("\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps({"scan": "someone/else", "version": 1}) + "\n", "scan of someone/else, not of"),
        (
            json.dumps({"scan": BASE, "version": 1}) + "\nnot json\n" + json.dumps({"id": "a/b"}) + "\n",
            ":2: not a line a scan wrote",
        ),
        (json.dumps({"scan": BASE, "version": 1}) + "\n[1, 2]\n", ":2: not a check record"),
    ],
)
def test_a_state_file_of_another_scan_or_corrupt_is_refused_in_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "scan.jsonl"
    path.write_text(content)
    with pytest.raises(SwindexError, match=message) as caught:
        ScanState(path, BASE)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("files", "flags", "expected"),
    [
        (("config.json", "model.safetensors"), {}, [Target()]),
        (("model-00001-of-00002.safetensors", "model.safetensors.index.json"), {}, [Target()]),
        (("a-Q4_0.gguf", "b-Q8_0.gguf"), {}, [Target(file="a-Q4_0.gguf"), Target(file="b-Q8_0.gguf")]),
        (("adapter_config.json", "adapter_model.safetensors"), {}, ["unsupported"]),
        (("pytorch_model.bin",), {}, ["unsupported"]),
        (("README.md",), {}, ["no weights"]),
        (("model.safetensors",), {"gated": True}, ["gated"]),
        (("model.safetensors",), {"remote_code": True}, ["remote code"]),
    ],
)
def test_what_a_repository_offers_to_check_is_decided_from_its_files(
    files: tuple[str, ...], flags: dict, expected: list
) -> None:
    targets = DerivedModel("a/b", "finetune", files=files, **flags).targets()
    assert [t if isinstance(e, Target) else t.skipped for t, e in zip(targets, expected, strict=True)] == expected
    assert all(t.reason for t in targets if t.skipped)


def test_a_skipped_target_is_recorded_without_a_request(entry: Entry) -> None:
    model = DerivedModel("a/b", "adapter", sha="1" * 40, files=("adapter_model.safetensors",))
    (target,) = model.targets()
    result = check_target(model, target, entry, deadline=1.0, endpoint="http://127.0.0.1:9")
    assert (result.skipped, result.verdict, result.bytes_read, result.revision) == ("unsupported", None, 0, "1" * 40)


def run_cli(hub: StandIn, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    return subprocess.run(
        [sys.executable, "-m", "swindex", "derived", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_command_lists_each_model_with_its_kind_downloads_date_and_files(hub: StandIn) -> None:
    done = run_cli(hub, BASE, "--kind", "merge")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(hub.derived("merge", BASE))
    repo = hub.derived("merge", BASE)[0]
    assert any(
        line.startswith("merge")
        and repo.id in line
        and f"{repo.downloads:,} downloads" in line
        and repo.last_modified[:10] in line
        for line in lines
    )
    assert f"{len(lines)} model(s) derived from {BASE}" in done.stderr


@pytest.mark.slow
def test_the_command_with_lost_prints_only_the_lost_and_counts_the_skipped(hub: StandIn) -> None:
    done = run_cli(hub, BASE, "--lost", "--kind", "finetune", "--deadline", "8", "--workers", "4", "--json")
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    lost = {key[0] for key, outcome in truth(hub).items() if outcome == "lost" and hub.repos[key[0]].kind == "finetune"}
    assert {r["id"] for r in printed} == lost
    assert all(r["verdict"] == "lost" for r in printed)
    for reason in ("gated (1)", "remote code (1)", "no weights (1)", "unsupported (1)", "could not read (2)"):
        assert f"could not check, {reason}" in done.stderr


def test_an_unknown_base_is_refused_before_the_hub_is_asked(hub: StandIn) -> None:
    pages = hub.served.listing_pages
    done = run_cli(hub, "nobody/no-such-model")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "no-such-model" in done.stderr
    assert hub.served.listing_pages == pages


def test_the_schema_names_the_same_kinds_and_skip_reasons_as_discovery() -> None:
    from swindex.derived import SKIP_REASONS
    from swindex.schema import entry_schema

    record = entry_schema()["$defs"]["derived_check"]["properties"]
    assert tuple(record["kind"]["enum"]) == KINDS
    assert tuple(record["skipped"]["enum"]) == SKIP_REASONS


@pytest.mark.slow
def test_the_builder_records_every_derived_checkpoint_and_the_site_shows_them(hub: StandIn, tmp_path: Path) -> None:
    import shutil

    from builder.derived import scan_model
    from swindex.records import Entry
    from swindex.sitegen.build import render_pages
    from swindex.sitegen.pages import SiteLinks, model_view
    from swindex.sitegen.sources import find_sources
    from swindex.validate import validate_entry_dict
    from swindex.yamlio import load_yaml

    registry = tmp_path / "registry"
    source = Path(__file__).resolve().parent.parent / "registry" / f"{BASE}.yaml"
    (registry / "HuggingFaceTB").mkdir(parents=True)
    shutil.copy(source, registry / f"{BASE}.yaml")
    written, summary = scan_model(BASE, registry, "2030-01-02", workers=8, deadline=DEADLINE, endpoint=hub.url)
    assert written, summary
    data = load_yaml(registry / f"{BASE}.yaml")
    assert validate_entry_dict(data) == []
    checks = data["evidence"]["derived_checks"]
    expected = truth(hub)
    assert {
        (c["id"], c.get("file")): c["verdict"] if c["verdict"] != "unknown" else c["skipped"] for c in checks
    } == expected
    assert all(c["date"] == "2030-01-02" and c["revision"] == hub.repos[c["id"]].sha for c in checks)

    links = SiteLinks(repo_url=None, edit_prefix=None, hub_endpoint="https://hub.example")
    views = [model_view(Entry.from_dict(data, path=f"{BASE}.yaml"), links)]
    docs = tmp_path / "docs"
    render_pages(views, find_sources(), docs, links, "2030-01-02T00:00:00Z", "https://example.org/")
    outcomes = Counter("could not check" if o not in ("kept", CHANGED, "lost") else o for o in expected.values())
    page = next(docs.rglob("SmolLM2-135M-Instruct*.md")).read_text()
    assert "## Derived checkpoints" in page
    assert (
        f"{outcomes['lost']} lost" in page
        and f"{outcomes['kept']} kept" in page
        and f"{outcomes['could not check']} could not check" in page
    )
    lost = sorted(key[0] for key, outcome in expected.items() if outcome == "lost")
    assert all(f'<a href="https://hub.example/{repo}" rel="nofollow noopener">{repo}</a>' in page for repo in lost)
    assert f"<strong>{len(expected)}</strong> derived checkpoints" in (docs / "index.md").read_text()
    assert 'data-derived="checked lost"' in (docs / "models" / "index.md").read_text()
    document = json.loads(next(docs.rglob("api/v2/models/HuggingFaceTB/SmolLM2-135M-Instruct.json")).read_text())
    assert document["derived"]["lost"] == outcomes["lost"]
    assert len(document["entry"]["evidence"]["derived_checks"]) == len(expected)


def test_a_verdict_the_table_does_not_know_gets_its_own_column_between_kept_and_lost() -> None:
    from swindex.sitegen.pages import derived_counts, derived_rows

    checks = [
        {"id": "a/kept", "date": "2030-01-02", "verdict": "kept", "weights": 2, "kept": 2},
        {"id": "a/gone", "date": "2030-01-02", "verdict": "lost", "weights": 2, "kept": 0},
        {"id": "a/weaker", "date": "2030-01-02", "verdict": "degraded", "weights": 2, "kept": 1},
        {
            "id": "a/gated",
            "date": "2030-01-02",
            "verdict": "unknown",
            "weights": 2,
            "kept": 0,
            "skipped": "gated",
            "reason": "gated",
        },
    ]
    rows = derived_rows({"evidence": {"derived_checks": checks}}, None)
    assert [r.id for r in rows] == ["a/gone", "a/weaker", "a/gated", "a/kept"]
    assert list(derived_counts(rows).items()) == [("kept", 1), ("degraded", 1), ("lost", 1), ("could not check", 1)]


def test_a_gguf_file_the_repository_lacks_is_refused_naming_those_it_has(hub: StandIn, entry: Entry) -> None:
    from swindex.checkpoint import CheckpointError, check

    repo = next(r for r in hub.derived("quantized", BASE) if len(r.truth) > 1)
    with pytest.raises(CheckpointError, match=r"has no GGUF file 'model-Q2_K.gguf' \(its GGUF files: SmolLM2"):
        check(f"{repo.id}@{repo.sha}", entry=entry, file="model-Q2_K.gguf", endpoint=hub.url)


def test_a_listing_that_stalls_fails_in_one_line_within_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    from huggingface_hub import constants

    from swindex.derived import DiscoveryError, discovery
    from swindex.derived.transport import scan_session

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(discovery, "PAGE_DEADLINE_SECONDS", 1.0)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, then never answers
    threading.Thread(target=lambda: silent.accept(), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=r"^listing the models derived from a/b \(quantized\): ") as caught:
        with scan_session(connections=1):
            list(list_derived("a/b", kinds=["quantized"], endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}"))
    assert time.monotonic() - started < 1.0 + 2.0
    assert "\n" not in str(caught.value)
    silent.close()


@given(seconds=st.integers(min_value=0, max_value=10**9))
def test_retry_after_in_seconds_is_read_as_written(seconds: int) -> None:
    from swindex.derived.transport import retry_after

    assert retry_after(str(seconds)) == seconds
    assert retry_after(f"  {seconds} ") == seconds


@given(ahead=st.integers(min_value=0, max_value=86_400 * 365))
def test_retry_after_as_a_date_is_the_time_until_it(ahead: int) -> None:
    from email.utils import formatdate

    from swindex.derived.transport import retry_after

    now = 1_900_000_000.0
    assert retry_after(formatdate(now + ahead, usegmt=True), now=now) == pytest.approx(ahead, abs=1)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "Mon, 99 Foo 2030"])
def test_retry_after_that_says_nothing_readable_is_none(value: str | None) -> None:
    from swindex.derived.transport import retry_after

    assert retry_after(value) is None


def test_the_builder_leaves_a_model_without_an_entry_alone_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from builder.cli import main

    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - id: acme/not-built-yet\n", encoding="utf-8")
    code = main(["--derived", "--models", str(models), "--registry", str(tmp_path / "registry")])
    assert code == 0
    assert (
        capsys.readouterr().out
        == "acme/not-built-yet: no registry entry yet: nothing to check its derived models against (entry unchanged)\n"
    )


def test_a_hostile_reason_or_file_name_on_the_model_page_stays_text(entry: Entry) -> None:
    import copy

    from swindex.records import Entry as Record
    from swindex.sitegen.pages import SiteLinks, model_view
    from swindex.sitegen.render import environment
    from swindex.sitegen.sources import find_sources

    data = copy.deepcopy(entry.to_dict())
    data.setdefault("evidence", {})["derived_checks"] = [
        {
            "id": "a/b",
            "date": "2030-01-02",
            "verdict": "unknown",
            "weights": 2,
            "kept": 0,
            "kind": "quantized",
            "file": "<img src=x onerror=alert(1)>.gguf",
            "skipped": "could not read",
            "reason": "<script>alert(1)</script>",
        },
    ]
    view = model_view(
        Record.from_dict(data, path=f"{BASE}.yaml"), SiteLinks(repo_url=None, edit_prefix=None, hub_endpoint=None)
    )
    page = environment(find_sources().templates).get_template("model.md.j2").render(m=view, here=view.url)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (SwindexError("a/b: the header lies"), "a/b: the header lies"),
        (ValueError(""), "unexpected ValueError (a swindex bug: please report it): "),
    ],
)
def test_whatever_one_check_raises_becomes_its_record(
    entry: Entry, monkeypatch: pytest.MonkeyPatch, raised: Exception, reason: str
) -> None:
    import swindex.checkpoint

    def failing(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(swindex.checkpoint, "check", failing)
    model = DerivedModel("a/b", "finetune", sha="1" * 40, files=("model.safetensors",))
    (target,) = model.targets()
    result = check_target(model, target, entry, deadline=5.0)
    assert (result.verdict, result.skipped, result.reason) == (None, "could not read", reason.strip())
