"""The Integrations page for everyone: an automated accessibility audit (axe-core), a phone (390 px) and a
desktop (1440 px) width, and keyboard-only use."""

from __future__ import annotations

from typing import Any

from arq.worker import Worker
from gwtest import Api, connect, wait_run
from pagekit import GatedToy, Shots, axe_audit, card, sign_in
from playwright.async_api import expect

from gateway.products import product_id
from gateway.services import Gateway


async def busy_store(gw: Gateway, api: Api, sim: GatedToy) -> str:
    """A store with something in every section: history, a failed product, a conflict."""
    sim.deliver_webhooks = False
    integration_id = await connect(api, sim)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    await api.query(
        'mutation($id: ID!) { editProduct(productId: $id, input: {title: "Alana title"}) { id } }',
        {"id": product_id(integration_id, "2")},
    )
    sim.update_product("2", name="Store title")
    sim.faults.set(malformed_ids=["4"])
    sim.update_product("4")
    run = await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": integration_id})
    await wait_run(gw, run["syncNow"]["id"])
    return f"My {sim.platform} store"


async def open_everything(page: Any, name: str) -> Any:
    store = card(page, name)
    for section in await store.locator("details").all():
        if await section.get_attribute("open") is None:
            await section.locator("summary").first.click()
    await expect(store.locator("li.conflict")).to_have_count(1)
    await expect(store.locator("details.activity-section li").first).to_be_visible()
    return store


async def test_no_serious_accessibility_problems_at_desktop_and_phone_widths(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    await page.goto(f"{api.url}/")
    await expect(page.get_by_label("API token")).to_be_focused()
    assert await axe_audit(page) == []
    await shots(page, "sign-in")

    name = await busy_store(gw, api, gated_store)
    await sign_in(page, f"{api.url}/", api.token())
    store = await open_everything(page, name)
    await expect(store.locator(".summary .errors")).to_contain_text("Product 4")
    assert await axe_audit(page) == []
    await shots(page, "desktop-1440-everything-open")

    for opener, title in (
        (page.get_by_role("button", name="Connect a store"), "Connect a store"),
        (store.get_by_role("button", name=f"Sync settings for {name}"), f"Sync settings: {name}"),
        (store.get_by_role("button", name="Disconnect"), f"Disconnect {name}?"),
    ):
        await opener.click()
        dialog = page.get_by_role("dialog", name=title)
        await expect(dialog).to_be_visible()
        assert await axe_audit(page) == [], title
        await shots(page, f"dialog-{title.split()[0].lower()}")
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(opener).to_be_focused()  # focus goes back where it was

    await page.set_viewport_size({"width": 390, "height": 844})
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways at 390 px: {widths}"
    for control in (
        store.get_by_role("button", name="Sync Now", exact=True),
        store.get_by_role("button", name=f"Sync settings for {name}"),
        store.get_by_role("button", name="Disconnect"),
        store.get_by_role("button", name="Re-apply Alana's change to title"),
    ):
        box = await control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert await axe_audit(page) == []
    await shots(page, "phone-390-everything-open")
    await store.get_by_role("button", name=f"Sync settings for {name}").click()
    await shots(page, "phone-390-settings")


async def test_keyboard_only(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    integration_id = await connect(api, gated_store)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    name = f"My {gated_store.platform} store"
    await page.goto(f"{api.url}/")
    await page.keyboard.type(api.token())  # the token field has focus on arrival
    await page.keyboard.press("Enter")
    await page.locator("#live-status[data-state=live]").wait_for()

    # Every control is reachable with Tab, in reading order.
    reached: list[str] = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        label = await page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.getAttribute('aria-label') || e.textContent || '').trim().replace(/\\s+/g, ' '); }"
        )
        reached.append(label)
    for expected in (
        "Connect a store",
        f"Sync settings for {name}",
        "Sync Now",
        "Sync specific products",
        "Sync history",
        "Conflicts",
        "Activity log",
        "Disconnect",
        "All activity",
    ):
        assert expected in reached, (expected, reached)
    assert reached.index("Connect a store") < reached.index("Sync Now") < reached.index("Disconnect")

    # The gear with the keyboard: open, move to the frequencies, pick one with the arrows, save.
    store = card(page, name)
    await store.get_by_role("button", name=f"Sync settings for {name}").focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Sync settings: {name}")
    await expect(dialog.get_by_label("Automatic")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_label("Every hour")).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(dialog.get_by_label("Every 4 hours")).to_be_checked()
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Save")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(store.get_by_role("button", name=f"Sync settings for {name}")).to_be_focused()
    [integration] = (await api.query("{ integrations { settings { frequency } } }"))["integrations"]
    assert integration["settings"]["frequency"] == "EVERY_4_HOURS"

    # Sync Now and the history with the keyboard.
    await store.get_by_role("button", name="Sync Now", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(store.locator(".summary h4")).to_contain_text("Sync succeeded")
    await store.locator("details.history-section summary").focus()
    await page.keyboard.press("Enter")
    await expect(store.locator("details.history-section li.run-row")).to_have_count(2)
    await shots(page, "keyboard-only")
