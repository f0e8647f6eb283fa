"""The built site in a real headless Chromium: search, the models table, model pages, console errors, hostile input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
from site_support import CHROMIUM_FLAGS, FIXTURE_REGISTRY, HOSTILE_ID, REPO, chromium_path, fixture_site

from swindex.sitegen.serve import serve_in_thread
from swindex.yamlio import load_yaml

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (the dev extra) to run browser tests"
)

pytestmark = pytest.mark.browser

PAGES = (
    "",
    "models/",
    "models/mistralai/Mistral-7B-v0.1/",
    "models/acme/tiny-moe/",
    "models/acme/clean-model/",
    "models/acme/candidates-model/",
    "models/huggyllama/llama-7b/",
    f"models/{HOSTILE_ID}/",
    "schema/",
    "contributing/",
    "api/",
)


@dataclass
class Visit:
    """A browser tab on the served site that records what went wrong and what left localhost."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server, url = serve_in_thread(fixture_site())
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS))
        yield instance
        instance.close()


@pytest.fixture
def visit(browser, base_url) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    v = Visit(page, base_url)
    page.on("console", lambda m: v.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: v.errors.append(f"uncaught: {exc}"))

    def on_dialog(dialog) -> None:
        v.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def offsite(route) -> None:
        # Nothing outside localhost is reachable here; answer like an empty API so pages behave as offline-but-fine.
        v.offsite.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body="{}")

    page.route(lambda url: not url.startswith(base_url), offsite)
    yield v
    context.close()


def _search_until(v: Visit, term: str, path: str, timeout_s: float = 15.0) -> list[str]:
    """Type a query into Material's search and wait until a result links to ``path`` (results update as it indexes)."""
    v.page.keyboard.press("s")  # Material's shortcut that opens the search box
    box = v.page.locator("input.md-search__input")
    box.fill("")
    box.press_sequentially(term, delay=15)
    deadline = time.monotonic() + timeout_s
    while True:
        # One atomic read: the result list is re-rendered while the query is being typed.
        hrefs = v.page.locator(".md-search-result__item > a.md-search-result__link").evaluate_all(
            "links => links.map(a => a.getAttribute('href') || '')"
        )
        if any(urlparse(h).path == path for h in hrefs) or time.monotonic() > deadline:
            return hrefs
        v.page.wait_for_timeout(200)


def _visible_rows(v: Visit) -> list[str]:
    return v.page.locator("#sw-models tbody tr:visible td:first-child a").all_inner_texts()


def test_searching_mistral_leads_to_its_page(visit):
    visit.open("")
    hits = _search_until(visit, "mistral", "/models/mistralai/Mistral-7B-v0.1/")
    target = next(h for h in hits if urlparse(h).path == "/models/mistralai/Mistral-7B-v0.1/")
    visit.page.locator(f'.md-search-result__item > a[href="{target}"]').click()
    visit.page.wait_for_url("**/models/mistralai/Mistral-7B-v0.1/**")
    assert visit.page.locator("h1").first.inner_text() == "mistralai/Mistral-7B-v0.1"


@pytest.mark.parametrize(
    ("term", "model_id"),
    [
        ("olmo", "allenai/OLMo-7B-0724-hf"),
        ("Llama-2-7b", "meta-llama/Llama-2-7b-hf"),
        ("mistralai", "mistralai/Mistral-7B-v0.1"),
        ("qwen3_moe", "acme/tiny-moe"),
    ],
)
def test_search_finds_a_model_by_id_alias_family_or_organisation(visit, term, model_id):
    visit.open("")
    paths = [urlparse(h).path for h in _search_until(visit, term, f"/models/{model_id}/")]
    assert f"/models/{model_id}/" in paths


def test_typing_in_the_table_filter_narrows_the_rows(visit):
    visit.open("models/")
    everything = _visible_rows(visit)
    visit.page.locator("#sw-filter").press_sequentially("mistral", delay=15)
    narrowed = _visible_rows(visit)
    assert sorted(narrowed) == ["mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mistral-7B-v0.1"]
    assert len(everything) > len(narrowed)
    assert visit.page.locator("#sw-count").inner_text() == f"2 of {len(everything)} models"


def test_table_filter_matches_status_and_shows_when_nothing_matches(visit):
    visit.open("models/")
    visit.page.locator("#sw-filter").fill("disputed")
    assert _visible_rows(visit) == ["mistralai/Mistral-7B-Instruct-v0.1"]
    visit.page.locator("#sw-filter").fill("no-such-model-anywhere")
    assert _visible_rows(visit) == []
    assert visit.page.locator("#sw-empty").is_visible()


def test_clicking_a_column_heading_sorts_the_table(visit):
    visit.open("models/")
    size = visit.page.locator("#sw-models thead th", has_text="Size").locator("button")

    column = [t.strip() for t in visit.page.locator("#sw-models thead th").all_inner_texts()].index("Size") + 1

    def values() -> list[float]:
        return [
            float(x)
            for x in visit.page.locator(f"#sw-models tbody tr td:nth-child({column})").evaluate_all(
                "cells => cells.map(c => c.dataset.value)"
            )
        ]

    size.click()
    ascending = values()
    size.click()
    descending = values()
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
    assert ascending != descending


def _outcomes() -> dict[str, str]:
    from swindex.records import Entry

    return {
        p.relative_to(FIXTURE_REGISTRY).with_suffix("").as_posix(): Entry.from_dict(load_yaml(p)).verdict.outcome
        for p in FIXTURE_REGISTRY.rglob("*.yaml")
    }


@pytest.mark.parametrize("outcome", ["super_weights", "no_critical_weight", "not_measured"])
def test_the_verdict_filter_shows_only_models_with_that_verdict(visit, outcome):
    visit.open("models/")
    everything = _visible_rows(visit)
    visit.page.locator("#sw-verdict-filter").select_option(outcome)
    shown = _visible_rows(visit)
    assert sorted(shown) == sorted(i for i, o in _outcomes().items() if o == outcome)
    assert 0 < len(shown) < len(everything)
    assert visit.page.locator("#sw-count").inner_text() == f"{len(shown)} of {len(everything)} models"


def test_the_verdict_filter_combines_with_the_text_filter_and_follows_the_address(visit):
    visit.open("models/?verdict=super_weights")
    assert visit.page.locator("#sw-verdict-filter").input_value() == "super_weights"
    visit.page.locator("#sw-filter").fill("mistral")
    assert _visible_rows(visit) == ["mistralai/Mistral-7B-v0.1"]


def test_home_page_counts_link_to_the_filtered_table(visit):
    visit.open("")
    visit.page.locator(".sw-stats a", has_text="where no single weight is critical").click()
    visit.page.wait_for_url("**/models/?verdict=no_critical_weight")
    visit.page.wait_for_load_state("networkidle")
    assert _visible_rows(visit) == [
        i for i, o in sorted(_outcomes().items(), key=lambda x: x[0].lower()) if o == "no_critical_weight"
    ]


def test_model_page_opens_with_the_verdict_above_everything_else(visit):
    visit.open("models/huggyllama/llama-7b/")
    verdict = visit.page.locator("#verdict")
    assert verdict.is_visible()
    assert verdict.locator(".sw-verdict-words").inner_text() == "1 super weight"
    assert "model.layers.2.mlp.down_proj.weight[3968, 7003]" in verdict.inner_text()
    assert "critical ×213.6" in verdict.inner_text()
    assert verdict.bounding_box()["y"] < visit.page.locator("#all-claims").bounding_box()["y"]
    assert verdict.bounding_box()["y"] < visit.page.locator(".sw-identity").bounding_box()["y"]


def test_published_per_layer_activations_are_charted_with_their_source(visit):
    visit.open("models/huggyllama/llama-7b/")
    figure = visit.page.locator("figure.sw-source-chart")
    assert figure.count() == 1 and figure.is_visible()
    assert "Official notebook, figures.ipynb (fixture)" in figure.locator("figcaption").inner_text()
    assert figure.locator("svg.sw-chart-output circle.sw-marked").count() == 1  # layer 2 holds the super weight


def test_model_page_shows_its_coordinates_and_chart(visit):
    visit.open("models/mistralai/Mistral-7B-v0.1/")
    assert visit.page.locator(".sw-coordinate").first.inner_text() == "model.layers.1.mlp.down_proj.weight[2070, 7310]"
    assert (
        'lookup("mistralai/Mistral-7B-v0.1").super_weights[0]'
        in visit.page.locator(".sw-weight .highlight").first.inner_text()
    )
    panels = visit.page.locator("svg.sw-chart-panel")
    assert panels.count() == 2 and panels.first.is_visible()
    box = panels.first.bounding_box()
    assert box["width"] > 200 and box["height"] > 100
    assert visit.page.locator("svg.sw-chart-input circle.sw-point").count() == 32
    assert visit.page.locator("svg.sw-chart-input circle.sw-marked").count() == 1


def test_each_copy_button_copies_its_own_snippet(visit):
    visit.open("models/mistralai/Mistral-7B-v0.1/")
    buttons = visit.page.locator('.sw-weight button[data-md-type="copy"]')
    targets = [buttons.nth(i).get_attribute("data-clipboard-target") for i in range(buttons.count())]
    copied = [visit.page.locator(t).inner_text().strip() for t in targets]
    assert len(set(targets)) == 2
    assert copied[0].startswith("from swindex import lookup")
    assert copied[1] == 'model.get_parameter("model.layers.1.mlp.down_proj.weight")[2070, 7310]'


def test_model_page_without_a_detection_run_says_so(visit):
    visit.open("models/meta-llama/Llama-2-7b-hf/")
    assert visit.page.locator("svg.sw-chart-panel").count() == 0
    assert "No detection run is recorded" in visit.page.locator(".sw-no-chart").inner_text()


def test_fences_in_a_hostile_entry_hide_no_section_and_leave_the_theme_working(visit):
    visit.open(f"models/{HOSTILE_ID}/")
    for heading in ("All claims", "Activations by layer", "Impact of removing it", "Disagreements", "Notes"):
        assert visit.page.locator("article h2", has_text=heading).is_visible(), heading
    config = visit.page.locator("#__config")
    assert config.count() == 1 and config.evaluate("el => el.tagName") == "SCRIPT"  # the theme's own, nobody else's
    assert visit.page.locator("article .md-toggle, article [class*=md-toggle]").count() == 0
    text = visit.page.locator("article").inner_text()
    assert "``` { .text .md-toggle }" in text and "~~~ { #__config }" in text  # shown as written
    # The theme's JavaScript ran: it added copy buttons to the snippets and opens search on its shortcut.
    assert (
        visit.page.locator('article button[data-md-type="copy"]').count()
        == visit.page.locator("article .highlight").count()
        > 0
    )
    visit.page.keyboard.press("s")
    assert visit.page.locator("input.md-search__input").evaluate("el => el === document.activeElement")
    assert visit.errors == []


def test_edit_link_points_at_the_entry_yaml(visit):
    visit.open("models/mistralai/Mistral-7B-v0.1/")
    repo = load_yaml(REPO / "mkdocs.yml")["repo_url"].rstrip("/")
    href = visit.page.locator("a.sw-edit").get_attribute("href")
    assert href == f"{repo}/edit/main/registry/mistralai/Mistral-7B-v0.1.yaml"


@pytest.mark.parametrize("path", PAGES)
def test_pages_log_no_console_errors(visit, path):
    visit.open(path)
    assert visit.errors == []


def test_nothing_but_the_repository_facts_is_fetched_from_other_hosts(visit):
    for path in ("", "models/mistralai/Mistral-7B-v0.1/"):
        visit.open(path)
    hosts = {urlparse(url).netloc + urlparse(url).path for url in visit.offsite}
    assert all(h.startswith("api.github.com/repos/") for h in hosts), hosts  # Material's star/fork counter for repo_url


def test_hostile_entry_runs_nothing(visit):
    visit.open(f"models/{HOSTILE_ID}/")
    visit.page.mouse.move(300, 300)
    visit.page.mouse.move(600, 800)
    article = visit.page.locator("article")
    assert visit.page.evaluate("window.__pwned") is None
    assert visit.dialogs == []
    assert article.locator("script, iframe, img, style, object, embed").count() == 0
    assert article.locator("svg:not(.sw-chart-panel):not(.md-icon svg) [onload]").count() == 0
    assert article.locator('a[href^="javascript:" i], a[href^="data:" i]').count() == 0
    on_handlers = article.evaluate(
        "el => [...el.querySelectorAll('*')].flatMap(n => [...n.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on'))"
    )
    assert on_handlers == []
    text = article.inner_text()
    assert "<script>window.__pwned='notes'</script>" in text  # shown as text, not run
    assert "[click](javascript:window.__pwned='notes-md')" in text  # Markdown left as written
    assert visit.page.locator("body").is_visible()  # the injected <style> did not apply


def test_hostile_text_in_search_results_runs_nothing(visit):
    visit.open("")
    hits = _search_until(visit, "onerror", f"/models/{HOSTILE_ID}/")
    assert any(HOSTILE_ID in h for h in hits)  # the hostile text is indexed and shown as a result
    assert visit.page.evaluate("window.__pwned") is None
    assert visit.page.locator(".md-search-result img, .md-search-result script").count() == 0
