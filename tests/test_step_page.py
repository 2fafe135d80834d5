"""training_step.html: its numbers are a fresh generation from the four stages' code, they are
what the model computes, and the page works in a real browser (headless Chromium)."""

import base64
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from report import step_page

TOLERANCE = 1e-10  # the parity tests' float64 tolerance


def values(box: dict) -> np.ndarray:
    """A box's stage-1 numbers, (2, *shape): values, then gradients."""
    return np.frombuffer(base64.b64decode(box["ref"]), dtype="<f8").reshape(2, *box["shape"])


@pytest.fixture(scope="module")
def fresh():
    return step_page.page_data()


@pytest.fixture(scope="module")
def committed():
    return step_page.committed_data()


def test_the_committed_page_is_a_fresh_generation(fresh, committed):
    """Every number of the committed page equals a generation from today's code (float64, to
    the parity tests' 1e-10), and each box names the lines that compute it today."""
    assert {k: v for k, v in fresh.items() if k != "runs"} == {k: v for k, v in committed.items() if k != "runs"}, \
        "training_step.html is stale: python -m report.step_page --screenshot"
    assert fresh["runs"].keys() == committed["runs"].keys()
    for run, new in fresh["runs"].items():
        old = committed["runs"][run]
        for key in ("inputs", "targets", "graph_nodes"):
            assert new[key] == old[key], (run, key)
        for stage, loss in new["loss"].items():
            assert loss == pytest.approx(old["loss"][stage], rel=0, abs=TOLERANCE), (run, stage)
        for key, box in new["boxes"].items():
            np.testing.assert_allclose(values(box), values(old["boxes"][key]), rtol=0, atol=TOLERANCE,
                                       err_msg=f"{run} {key}")
            assert box["diff"].keys() == old["boxes"][key]["diff"].keys()
        for a, b in zip(new["adam"], old["adam"]):
            assert a["weight"] == b["weight"]
            np.testing.assert_allclose([a[k] for k in a if k != "weight"], [b[k] for k in b if k != "weight"],
                                       rtol=1e-9, atol=TOLERANCE)


def test_the_four_stages_agree_on_every_box(fresh):
    """What the page shows: every stage that holds a box has its values and gradients within
    1e-10 of stage 1's, and every stage's loss is stage 1's."""
    for run, data in fresh["runs"].items():
        assert max(data["loss"].values()) - min(data["loss"].values()) < TOLERANCE, run
        for key, box in data["boxes"].items():
            for stage, (value_gap, grad_gap) in box["max"].items():
                assert value_gap < TOLERANCE and grad_gap < TOLERANCE, (run, key, stage)
    held = {key: set(box["diff"]) for key, box in fresh["runs"]["emma|0"]["boxes"].items()}
    assert held["q"] == {"2_numpy", "3_pytorch", "4_triton"} and held["attn"] == held["scores"] == set()
    assert held["fc1"] == {"2_numpy", "3_pytorch"}  # stage 4 fuses the ReLU into fc1's matmul


def test_the_page_says_why_for_exactly_the_boxes_a_stage_does_not_keep(fresh):
    for box in fresh["boxes"]:
        for stage in step_page.STAGES:
            assert (box["where"][stage] is None) == ((box["key"], stage) in step_page.WHY_NOT), (box["key"], stage)


def test_the_boxes_are_the_model_s_quantities(fresh):
    """The captured boxes are what their titles say (a wrong call picked up would fail here):
    rmsnorm of the embedding, softmax of the logits, rows of attention summing to 1 with nothing
    above the diagonal, the loss as -log p[next], the residuals as sums, and Adam's update."""
    data = fresh["runs"]["isabella|1000"]
    v = {key: values(box)[0] for key, box in data["boxes"].items()}
    rms = lambda x: x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(v["x1"], rms(v["x0"]), atol=1e-12)
    np.testing.assert_allclose(v["h_attn"], rms(v["x1"]), atol=1e-12)
    np.testing.assert_allclose(v["h_mlp"], rms(v["x2"]), atol=1e-12)
    np.testing.assert_allclose(v["relu"], np.maximum(v["fc1"], 0), atol=1e-12)
    probs = np.exp(v["logits"] - v["logits"].max(axis=-1, keepdims=True))
    np.testing.assert_allclose(v["probs"], probs / probs.sum(axis=-1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(v["attn"].sum(axis=-1), 1.0, atol=1e-12)
    assert not np.triu(v["attn"], k=1).any()
    upper = np.triu(np.ones(v["scores"].shape[-2:], dtype=bool), k=1)
    assert np.all(v["scores"][:, upper] == -np.inf) and np.isfinite(v["scores"][:, ~upper]).all()
    weights = np.exp(v["scores"] - v["scores"].max(axis=-1, keepdims=True))
    np.testing.assert_allclose(v["attn"], weights / weights.sum(axis=-1, keepdims=True), atol=1e-12)
    q, k = (v[key].reshape(len(v[key]), 4, 4) for key in "qk")
    np.testing.assert_allclose(v["scores"][:, ~upper], (np.einsum("thd,shd->hts", q, k) / 2)[:, ~upper], atol=1e-12)
    y = np.einsum("hts,shd->thd", v["attn"], v["v"].reshape(len(v["v"]), 4, 4)).reshape(v["y"].shape)
    np.testing.assert_allclose(v["y"], y, atol=1e-12)
    vocab = fresh["vocab"]
    targets = [vocab.index(t) for t in data["targets"]]
    np.testing.assert_allclose(v["loss"], -np.log(v["probs"][np.arange(len(targets)), targets]), atol=1e-12)
    assert np.mean(v["loss"]) == pytest.approx(data["loss"]["1_pure_python"], abs=1e-12)
    for a in fresh["runs"]["emma|1"]["adam"]:
        m = a["beta1"] * a["m_before"] + (1 - a["beta1"]) * a["g"]
        step = a["lr"] * (m / (1 - a["beta1"] ** a["t"])) / (np.sqrt(a["v_hat"]) + a["eps"])
        assert a["m"] == pytest.approx(m) and a["update"] == pytest.approx(step)
        assert a["w_after"] == pytest.approx(a["w"] - a["update"], abs=1e-15)


def test_the_page_stands_alone_and_says_its_size():
    """One file, no network: no external script, style, font or image; small enough to open at once."""
    html = step_page.PAGE.read_text()
    for reference in ("src=\"http", "href=\"http", "src='http", "@import", "url(http", "<link", "<script src"):
        assert reference not in html
    for part in ("step_page.css", "step_page.js"):  # the template's own files, inlined
        assert (REPO_ROOT / "report" / part).read_text().strip().splitlines()[-1] in html, part
    assert step_page.PAGE.stat().st_size < 3e6
    for picture in (step_page.SCREENSHOT, step_page.SCREENSHOT_BACKWARD):
        width, _ = struct.unpack(">II", picture.read_bytes()[16:24])  # the PNG's header
        assert width >= 1000
    readme = (REPO_ROOT / "README.md").read_text()
    assert all(name in readme for name in ("training_step.html", "training_step.png", "training_step_backward.png"))
    assert "training_step.html" in (REPO_ROOT / "1_pure_python" / "README.md").read_text()


# ---------------------------------------------------------------------------- what the generator writes


def generate(*argv, cwd=REPO_ROOT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "report.step_page", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize("target", ["data/names.txt", "report/step_page.html", "report/step_page.js", "README.md"])
def test_the_generator_replaces_nothing_it_did_not_write(target):
    """--out naming the names, the page's own template or script, or a README: one line, exit 1,
    before any computing, and the file unchanged."""
    before = (REPO_ROOT / target).read_bytes()
    proc = generate("--out", target)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a page this program generated" in proc.stderr
    assert (REPO_ROOT / target).read_bytes() == before


def test_the_generator_checks_its_out_before_computing(tmp_path):
    """A missing folder, a folder, a read-only page: each one line and exit 1, nothing written."""
    read_only = tmp_path / "page.html"
    read_only.write_bytes(step_page.PAGE.read_bytes())  # a page written before: its owner made it read-only
    read_only.chmod(0o444)
    for out, message in ((tmp_path / "no" / "page.html", "does not exist"), (tmp_path, "is a directory"),
                         (read_only, "is read-only")):
        proc = generate("--out", str(out))
        assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1, (out, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_a_screenshot_without_a_working_browser_is_one_line(tmp_path):
    """--screenshot with no Chromium, or with a driver that crashes as it starts (a segmentation
    fault): one line before any computing, saying what to check, and nothing written."""
    page = tmp_path / "page.html"
    proc = generate("--out", str(page), "--screenshot", env={**os.environ, "MICROGPT_CHROMIUM": "no-such-chromium"})
    assert proc.returncode == 1 and proc.stderr.startswith("error: --screenshot needs a browser: no chromium"), \
        proc.stderr
    assert not page.exists()
    crashing = tmp_path / "chromedriver"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    proc = generate("--out", str(page), "--screenshot", env={**os.environ, "MICROGPT_CHROMIUM": sys.executable,
                                                             "MICROGPT_CHROMEDRIVER": str(crashing)})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: --screenshot: Chromium did not start (") and "same version" in proc.stderr, \
        proc.stderr
    assert not page.exists()


# ---------------------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser():
    from report.browser import BrowserMissing, chromium

    try:
        with chromium() as session:
            session.get(step_page.PAGE.resolve().as_uri())
            yield session
    except BrowserMissing as err:
        if os.environ.get("MICROGPT_REQUIRE_BROWSER") == "1":  # .ci/run installs one: there it must run
            pytest.fail(f"the browser tests need Chromium: {err}")
        pytest.skip(f"THE BROWSER TESTS DID NOT RUN: {err}")


def click(browser, selector: str) -> None:
    """Click an element after scrolling it to the middle of the window (the controls stay on top)."""
    element = browser.find_element("css selector", selector)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def detail_rows(browser) -> list[str]:
    return [row.text for row in browser.find_elements("css selector", "#detail tr.stage-row")]


def no_errors(browser) -> None:
    """The page's console has no error since the last look (an exception in a click handler too)."""
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_page_loads_without_errors_and_draws_every_box(browser):
    no_errors(browser)
    boxes = browser.find_elements("css selector", "#boxes .box")
    assert [b.get_attribute("data-key") for b in boxes] == [key for key, *_ in step_page.BOXES]
    weights = browser.find_elements("css selector", "#weights .box")
    assert [b.get_attribute("data-key") for b in weights] == [key for key, *_ in step_page.WEIGHT_BOXES]
    for box in boxes:
        assert box.find_elements("css selector", "canvas"), box.get_attribute("data-key")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_a_box_shows_what_each_stage_computed(browser):
    click(browser, '#boxes .box[data-key="q"] h2')
    rows = detail_rows(browser)
    assert len(rows) == 4
    numbers = [browser.find_elements("css selector", "#detail .stage-value")[i].text for i in range(4)]
    assert all(len(n.strip().lstrip("-").replace(".", "").replace("e", "")) >= 17 for n in numbers), numbers
    assert len({float(n) for n in numbers}) <= 4
    click(browser, '#boxes .box[data-key="attn"] h2')
    rows = detail_rows(browser)
    assert sum("not held" in row for row in rows) == 3 and "pure Python" in rows[0]
    no_errors(browser)


def test_choosing_a_name_a_step_and_the_backward_pass_changes_the_numbers(browser):
    from selenium.webdriver.support.ui import Select

    click(browser, '#boxes .box[data-key="logits"] h2')
    before = detail_rows(browser)[0]
    Select(browser.find_element("id", "name")).select_by_value("isabella")
    click(browser, '#boxes .box[data-key="logits"] h2')
    after_name = detail_rows(browser)[0]
    assert after_name != before and "isabella" in browser.find_element("id", "summary").text
    Select(browser.find_element("id", "step")).select_by_value("1000")
    click(browser, '#boxes .box[data-key="logits"] h2')
    assert detail_rows(browser)[0] != after_name
    browser.find_element("id", "backward").click()
    assert browser.find_element("css selector", ".box h2").text.startswith("gradient of the loss with respect to: loss")
    assert browser.find_element("id", "backward").get_attribute("aria-pressed") == "true"
    browser.find_element("id", "forward").click()
    no_errors(browser)


def test_the_boxes_are_reached_with_the_keyboard(browser):
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element("css selector", '.box[data-key="relu"]')
    browser.execute_script("arguments[0].focus()", box)
    box.send_keys(Keys.ENTER)
    assert browser.find_element("css selector", "#detail h2").text == "ReLU"
    assert browser.find_element("css selector", '.box[data-key="relu"]').get_attribute("tabindex") == "0"
    no_errors(browser)


def stage_one_value(browser) -> float:
    return float(browser.find_elements("css selector", "#detail .stage-value")[0].text)


def test_a_backward_box_says_how_its_gradient_is_made(browser):
    """In the backward view each box shows its own caption (its local derivative), and clicking
    a gradient cell shows the local derivative x gradient-from-above terms, whose sum equals the
    number stage 1 holds there."""
    browser.find_element("id", "backward").click()
    for key, _, _, back in step_page.BOXES:
        caption = browser.find_element("css selector", f'#boxes .box[data-key="{key}"] .what').text
        assert caption.endswith(back), (key, caption)
    for key in ("logits", "x3", "fc1", "x2", "scores", "v", "q", "k", "h_attn", "x0", "x1", "y", "h_mlp", "relu",
                "attn", "probs", "loss"):
        click(browser, f'#boxes .box[data-key="{key}"] .heat canvas')
        total = float(browser.find_element("css selector", "#explain .total").text)
        assert total == pytest.approx(stage_one_value(browser), rel=1e-9, abs=1e-15), key
        if key in ("q", "x1", "scores"):  # the local derivative is the Jacobian's, not the gradient from above
            terms = browser.find_element("css selector", "#explain").text
            assert {"q": "/ √4, × g_S", "x1": "r (", "scores": "∂P["}[key] in terms, (key, terms)
        assert browser.find_element("css selector", "#detail .rule").text.startswith(
            next(back for k, _, _, back in step_page.BOXES if k == key)[:30])
    browser.find_element("id", "forward").click()
    no_errors(browser)


def test_the_residual_stream_and_every_box_s_colour_scale_are_drawn(browser):
    """x1, x2 and x3 are marked as the residual stream in both passes, and in the backward one
    the two arrows say that the gradient from above arrives there unchanged; every box's colour
    scale says in numbers the largest |value| its colours stand for: stage 1's, in the page's data."""
    for view in ("forward", "backward"):
        browser.find_element("id", view).click()
        marked = [b.get_attribute("data-key") for b in browser.find_elements("css selector", "#boxes .box.residual")]
        assert sorted(marked) == ["x1", "x2", "x3"], (view, marked)
        arrows = [a.text for a in browser.find_elements("css selector", "#boxes .residual-arrow")]
        assert len(arrows) == (2 if view == "backward" else 0), arrows
        assert all("arrives here unchanged" in a for a in arrows), arrows
        run = browser.execute_script("return state.name + '|' + state.step")  # (as earlier tests left them)
        for box in browser.find_elements("css selector", "#boxes .box"):
            key = box.get_attribute("data-key")
            data = browser.execute_script(f"return {{ref: DATA.runs['{run}'].boxes['{key}'].ref, "
                                          f"shape: DATA.runs['{run}'].boxes['{key}'].shape}}")
            numbers = values(data)[0 if view == "forward" else 1]
            largest = float(np.nanmax(np.abs(np.where(np.isfinite(numbers), numbers, 0))))
            low, high = (n.text for n in box.find_elements("css selector", ".box-scale .num"))
            assert float(high) == pytest.approx(largest, rel=0.05) and float(low) == -float(high), (view, key, high)
    browser.find_element("id", "forward").click()
    no_errors(browser)


def test_a_weight_gradient_is_the_sum_of_the_positions_outer_products(browser):
    """Every weight box draws its gradient; a click shows the sum over positions, equal to what
    stage 2's backward holds, for a matrix and for the embedding's scatter-add."""
    for key in ("layer0.attn_wq", "layer0.mlp_fc1", "lm_head", "wte", "wpe"):
        click(browser, f'#weights .box[data-key="{key}"] .heat canvas')
        total = float(browser.find_element("css selector", "#explain .total").text)
        held = float(browser.find_element("css selector", "#explain .held").text)
        assert total == pytest.approx(held, rel=1e-9, abs=1e-15), key
    no_errors(browser)


def test_start_here_walks_from_the_loss_to_a_weight(browser):
    browser.find_element("id", "tour-start").click()
    assert browser.find_element("id", "backward").get_attribute("aria-pressed") == "true"
    visited = []
    for _ in range(len(step_page.TOUR_KEYS)):
        visited.append(browser.find_element("css selector", ".box.selected").get_attribute("data-key"))
        total = float(browser.find_element("css selector", "#explain .total").text)
        assert total == pytest.approx(float(browser.find_element("css selector", "#explain .held").text),
                                      rel=1e-9, abs=1e-15)
        if browser.find_element("id", "tour-next").is_enabled():
            browser.find_element("id", "tour-next").click()
    assert visited == step_page.TOUR_KEYS
    browser.find_element("id", "forward").click()
    no_errors(browser)


def test_the_weight_gradients_on_the_page_are_stage_1_s_sums(fresh):
    """The weights' gradients the page draws (stage 2's backward) equal the sums over positions
    of stage 1's gradients x values: g_W = sum_t g_out[t] x[t]^T, and wte's scatter-add."""
    data = fresh["runs"]["isabella|1"]
    box = {key: values(b) for key, b in data["boxes"].items()}
    flat = np.frombuffer(base64.b64decode(data["weight_grad"]), dtype="<f8")
    offsets = fresh["offsets"]

    def matrix(name):
        start, rows, cols = offsets[name]
        return flat[start:start + rows * cols].reshape(rows, cols)
    for name, _, out, into in step_page.WEIGHT_BOXES:
        if into is not None:
            np.testing.assert_allclose(matrix(name), box[out][1].T @ box[into][0], atol=1e-12, err_msg=name)
    tokens = [fresh["vocab"].index(t) for t in data["inputs"]]
    wte = np.zeros_like(matrix("wte"))
    np.add.at(wte, tokens, box["x0"][1])
    np.testing.assert_allclose(matrix("wte"), wte, atol=1e-12)
    np.testing.assert_allclose(matrix("wpe")[:len(tokens)], box["x0"][1], atol=1e-12)
