"""The page of `genkit serve` in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) loads it, submits the form, and finds what came back."""

import shutil

import pytest

from tests.cli.genkit_server import genkit_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no Chromium here: `apt-get install chromium chromium-driver` (make test does where it can)",
)


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


@pytest.mark.slow
def test_page_generates_text(tmp_path, browser, tiny_gpt_checkpoint):
    from selenium.webdriver.common.by import By

    with genkit_server(tiny_gpt_checkpoint, tmp_path) as server:
        browser.get(server.url)
        _wait(browser, lambda d: d.find_element(By.ID, "text-form").is_displayed())
        browser.find_element(By.ID, "prompt").send_keys("line")
        browser.find_element(By.ID, "max_tokens").clear()
        browser.find_element(By.ID, "max_tokens").send_keys("8")
        browser.find_element(By.ID, "go-text").click()
        _wait(browser, lambda d: "tokens, seed" in d.find_element(By.ID, "status").text)
        result = browser.find_element(By.ID, "result").text
        assert result.startswith("line") and len(result) > len("line")
        assert "8 tokens" in browser.find_element(By.ID, "status").text
        assert server.stop() == 0


@pytest.mark.slow
def test_page_generates_images_of_a_class(tmp_path, browser, tiny_cdiffusion_checkpoint):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    data_root = tiny_cdiffusion_checkpoint.parents[3] / "data"
    with genkit_server(tiny_cdiffusion_checkpoint, tmp_path, f"data_root={data_root}") as server:
        browser.get(server.url)
        _wait(browser, lambda d: d.find_element(By.ID, "image-form").is_displayed())
        Select(browser.find_element(By.ID, "label")).select_by_value("7")
        browser.find_element(By.ID, "n").clear()
        browser.find_element(By.ID, "n").send_keys("2")
        browser.find_element(By.ID, "go-image").click()
        _wait(browser, lambda d: "images, seed" in d.find_element(By.ID, "status").text)
        images = browser.find_elements(By.CSS_SELECTOR, "#images img")
        assert len(images) == 2 and all(img.get_attribute("title") == "class 7" for img in images)
        # decoded by the browser: a real PNG of the model's 28 x 28 images
        assert all(browser.execute_script("return arguments[0].naturalWidth", img) == 28 for img in images)
        assert server.stop() == 0
