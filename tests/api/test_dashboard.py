"""The dashboard in a real headless Chromium (Debian's, driven through Debian's chromedriver
by Selenium: nothing is downloaded) on a live 3-node loopback cluster: after the token is
typed the page shows nodes and resources; a node is killed and the page, fed only by the
event stream, shows the node lost and the resource running elsewhere within seconds, and
its availability panel, fetched again on that failover, counts it; at a phone's width the
panel still fits."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from hakeeper.balancer.api_token import token_digest
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, node_address
from tests.api.conftest import until_listening
from tests.conftest import require_file

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "d" * 43
RESOURCES = """
[resources.web]
agent = "ocf:heartbeat:Dummy"
ops.monitor = { interval = "1s", timeout = "10s" }
"""
#: How long the page may take to show the failover after the kill (lease expiry included).
SHOWN_WITHIN = 30.0
#: Set to a path to also save the screenshot there (docs/dashboard.png for the README).
SCREENSHOT_ENV = "HAKEEPER_DASHBOARD_SCREENSHOT"
#: The page's own query, passed on to /v1/availability.
PAGE_QUERY = "?target=99.9%25&window=1h"
#: A phone's CSS width (an iPhone 12-15).
PHONE_WIDTH = 390


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoopbackCluster]:
    port = free_port_on([node_address(i) for i in (1, 2, 3)])
    listen = ", ".join(f'n{i} = "{node_address(i)}:{port}"' for i in (1, 2, 3))
    api = (
        f"\n[api]\nlisten_on = {{ {listen} }}\n[api.tokens]\n"
        f'ops = {{ hash = "{token_digest(TOKEN)}", role = "operate" }}\n'
    )
    # With the lab's fence device: a killed node is fenced, so its resource is recovered.
    base = tmp_path_factory.mktemp("dashboard")
    async with LoopbackCluster(base, RESOURCES + api, fence_device=True) as live:
        live.api_port = port  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    require_file(CHROMIUM)
    require_file(CHROMEDRIVER)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _shown(driver: webdriver.Chrome) -> dict[str, str]:
    """What the page shows now, read in one script (the stream replaces rows at any time):
    ``node:<name>`` → its state, ``resource:<id>`` → where it runs, ``availability:<service>``
    → its verdict and failover count."""
    shown: dict[str, str] = driver.execute_script(
        """
        const out = {};
        for (const r of document.querySelectorAll('#nodes tr[data-node]'))
          out['node:' + r.dataset.node] = r.dataset.state;
        for (const r of document.querySelectorAll('#resources tr[data-resource]'))
          out['resource:' + r.dataset.resource] = r.dataset.running;
        for (const r of document.querySelectorAll('#availability tr[data-service]'))
          out['availability:' + r.dataset.service] = r.dataset.verdict + ' ' + r.dataset.failovers;
        return out;
        """
    )
    return shown


def _until(
    driver: webdriver.Chrome, what: str, seconds: float, check: Callable[[webdriver.Chrome], bool]
) -> None:
    try:
        WebDriverWait(driver, seconds, poll_frequency=0.1).until(check)
    except TimeoutException as exc:
        message = driver.find_element(By.ID, "message").text
        raise AssertionError(f"{what}: the page shows {_shown(driver)}; says {message!r}") from exc


def _running(driver: webdriver.Chrome, resource: str) -> str:
    return _shown(driver).get(f"resource:{resource}", "")


def _state(driver: webdriver.Chrome, node: str) -> str:
    return _shown(driver).get(f"node:{node}", "")


def _failovers_counted(driver: webdriver.Chrome, service: str) -> int:
    verdict_and_count = _shown(driver).get(f"availability:{service}", "")
    return int(verdict_and_count.split(" ")[-1]) if verdict_and_count else -1


def _fits(driver: webdriver.Chrome, element_id: str) -> bool:
    """The element needs no sideways scrolling."""
    fits: bool = driver.execute_script(
        "const e = document.getElementById(arguments[0]).closest('section');"
        "return e.scrollWidth <= e.clientWidth && e.getBoundingClientRect().right <= innerWidth;",
        element_id,
    )
    return fits


async def test_the_page_shows_a_failover_after_a_node_is_killed(
    cluster: LoopbackCluster, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    observed = await cluster.wait_for("web runs", lambda o: bool(o.running_on("web")))
    holder = observed.running_on("web")[0]
    viewer = next(n for n in cluster.names if n != holder)
    port: int = cluster.api_port  # type: ignore[attr-defined]
    # The daemon serves its API beside its resources: a resource may run before it listens.
    await until_listening(cluster.address[viewer], port, 60.0)
    url = f"http://{cluster.address[viewer]}:{port}/{PAGE_QUERY}"

    def sign_in() -> None:
        browser.get(url)
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        _until(browser, "the page shows web", 30, lambda d: holder in _running(d, "web"))
        _until(browser, "the availability of web", 30, lambda d: _failovers_counted(d, "web") == 0)

    await asyncio.to_thread(sign_in)
    assert _state(browser, holder) == "online"
    killed = time.monotonic()
    cluster.crash(holder)

    def failover_shown() -> float:
        def moved(d: webdriver.Chrome) -> bool:
            where = _running(d, "web")
            others = [n for n in cluster.names if n != holder]
            shown = where.split(", ")
            return _state(d, holder) != "online" and any(f"{n} started" in shown for n in others)

        _until(browser, "the page shows the failover", SHOWN_WITHIN, moved)
        shown = time.monotonic() - killed

        def counted(d: webdriver.Chrome) -> bool:
            return _failovers_counted(d, "web") == 1

        _until(browser, "the availability panel counts the failover", SHOWN_WITHIN, counted)
        return shown

    took = await asyncio.to_thread(failover_shown)
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    if os.environ.get(SCREENSHOT_ENV):
        browser.save_screenshot(os.environ[SCREENSHOT_ENV])
    print(f"failover shown {took:.1f} s after the kill; screenshot {shot}")
    assert took < SHOWN_WITHIN
    browser.set_window_size(PHONE_WIDTH, 844)
    assert await asyncio.to_thread(_fits, browser, "availability")
    browser.execute_script("document.getElementById('availability').scrollIntoView()")
    assert browser.save_screenshot(str(tmp_path / "dashboard-phone.png"))
