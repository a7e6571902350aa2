"""The launch flags do what they claim: our --disable-features keeps Playwright's own list (Chromium honours
only the last one given), and a session's context runs one renderer, not a second one for the hidden
window's address-bar dropdown."""

from __future__ import annotations

import re
from pathlib import Path

import playwright
from playwright.async_api import async_playwright

from wa_ray.runtime import CHROMIUM_FLAGS, PLAYWRIGHT_DISABLED_FEATURES, default_chromium


def _driver_disabled_features() -> set[str]:
    bundle = Path(playwright.__file__).parent / "driver" / "package" / "lib" / "coreBundle.js"
    text = bundle.read_text()
    block = re.search(r"disabledFeatures = \[(.*?)\]\.filter", text, re.S)
    assert block, "Playwright's disabledFeatures list moved: re-read chromiumSwitches in the driver"
    return set(re.findall(r'^\s*"([A-Za-z0-9]+)",?\s*$', block.group(1), re.M))


def test_our_disable_features_repeats_playwrights_list() -> None:
    ours = [f for f in CHROMIUM_FLAGS if f.startswith("--disable-features=")]
    assert len(ours) == 1
    names = set(ours[0].split("=", 1)[1].split(","))
    driver = _driver_disabled_features()
    assert driver, "found no names in the driver's list"
    assert driver <= names, f"missing from ours: {sorted(driver - names)}"
    assert set(PLAYWRIGHT_DISABLED_FEATURES) == driver


async def test_a_context_has_no_browser_ui_target() -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS))
        try:
            context = await browser.new_context()
            await context.new_page()
            cdp = await browser.new_browser_cdp_session()
            targets = (await cdp.send("Target.getTargets"))["targetInfos"]
            ui = [t for t in targets if t["type"] not in ("page", "browser") or t["url"].startswith("chrome://")]
            assert not ui, ui
        finally:
            await browser.close()
