"""The help page's tasks (docs/reference/help-configuring-sync-settings.txt), one by one, as a merchant does
them on Settings > Integrations in Chromium, against the real gateway, worker and a toy store."""

from __future__ import annotations

import re
from typing import Any

from arq.worker import Worker
from gwtest import Api, connect, wait_run
from pagekit import GatedToy, Shots, card, sign_in
from playwright.async_api import expect

from gateway.products import product_id
from gateway.runs import Run
from gateway.services import Gateway

NAME = "My toy store"

RECORD_BAR = """() => {
  window.__bar = [];
  const seen = new WeakSet();
  const watch = (bar) => {
    if (seen.has(bar)) return;
    seen.add(bar);
    new MutationObserver(() => window.__bar.push(bar.hasAttribute("value") ? Number(bar.value) : null))
      .observe(bar, { attributes: true, attributeFilter: ["value"] });
  };
  document.querySelectorAll("progress").forEach(watch);
}"""


async def first_run(gw: Gateway, integration_id: str) -> Run:
    return await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)


async def test_connect_with_keys_change_settings_and_sync_now(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    await sign_in(page, f"{api.url}/", api.token())
    await expect(page.get_by_text("No store is connected yet")).to_be_visible()
    await shots(page, "signed-in-no-stores")

    # Connect: paste the keys the platform's credentialFields ask for.
    await page.get_by_role("button", name="Connect a store").click()
    dialog = page.get_by_role("dialog", name="Connect a store")
    await dialog.get_by_label("Platform").select_option(label="Toy Store")
    await dialog.get_by_label("Name in Alana").fill(NAME)
    await dialog.get_by_label("Store URL").fill(gated_store.store_url)
    await dialog.get_by_label("API token").fill("wrong-token")
    await dialog.get_by_role("button", name="Connect").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("refused these credentials")
    await expect(dialog.get_by_label("Name in Alana")).to_have_value(NAME)  # nothing typed is lost
    await shots(page, "connect-refused-keys")
    gated_store.close_gate()  # the first sync stops after its first page until we look
    await dialog.get_by_label("API token").fill(gated_store.token)
    await dialog.get_by_role("button", name="Connect").click()
    await expect(dialog).to_be_hidden()

    # The first sync: YELLOW with WAIT while it runs, the bar part-way; then GREEN with the summary.
    store = card(page, NAME)
    await expect(card(page, NAME, "YELLOW")).to_be_visible()
    bar = store.locator("progress")
    await expect(bar).to_have_attribute("value", "33")
    await expect(store.locator(".run-text")).to_contain_text("100 of 300 products (33%)")
    await expect(store.locator(".reason")).to_contain_text("sync")
    await shots(page, "first-sync-running-yellow")
    gated_store.open_gate()
    await expect(card(page, NAME, "GREEN")).to_be_visible()
    await expect(bar).to_have_attribute("value", "100")
    await expect(store.locator(".summary .count.added dd")).to_have_text("300")
    await expect(store.locator(".fact", has_text="Products").locator("dd")).to_have_text("300")
    await expect(store.locator(".fact", has_text="Last sync").locator("time")).to_have_text("just now")
    await shots(page, "first-sync-done-green")

    # The gear: mode and frequency in the help page's words.
    await store.get_by_role("button", name=f"Sync settings for {NAME}").click()
    settings = page.get_by_role("dialog", name=f"Sync settings: {NAME}")
    await expect(settings.get_by_text("Frequent updates, balanced resource use (recommended)")).to_be_visible()
    await expect(settings.get_by_label("Every hour")).to_be_checked()
    await shots(page, "settings-dialog")
    await settings.get_by_label("Every 4 hours").check()
    await settings.get_by_role("button", name="Save").click()
    await expect(settings).to_be_hidden()
    await expect(store.locator(".fact", has_text="Sync mode").locator("dd")).to_have_text("Automatic · every 4 hours")
    await store.get_by_role("button", name=f"Sync settings for {NAME}").click()
    await settings.get_by_label("Manual").check()
    await expect(settings.get_by_label("Daily")).to_be_disabled()
    await settings.get_by_role("button", name="Save").click()
    await expect(store.locator(".fact", has_text="Next scheduled sync")).to_contain_text("manual mode")
    [integration] = (await api.query("{ integrations { id settings { mode frequency } } }"))["integrations"]
    assert integration["settings"] == {"mode": "MANUAL", "frequency": "EVERY_4_HOURS"}
    await shots(page, "settings-saved-manual")

    # Sync Now: the bar moves to 100 % and the summary follows; one product's error is named.
    gated_store.faults.set(malformed_ids=["5"])
    gated_store.deliver_webhooks = False  # manual mode: the changes wait for this Sync Now
    for pid in ("5", "6", "7"):
        gated_store.update_product(pid)
    gated_store.close_gate(from_page=1)
    await page.evaluate(RECORD_BAR)
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    await expect(card(page, NAME, "YELLOW")).to_be_visible()
    await expect(store.locator(".run-title")).to_have_text("Sync Now, changes only")
    await shots(page, "sync-now-queued-or-running")
    gated_store.open_gate()
    await expect(store.locator(".summary h4")).to_contain_text("Sync succeeded")
    await expect(bar).to_have_attribute("value", "100")
    await expect(store.locator(".summary .count.updated dd")).to_have_text("2")
    await expect(store.locator(".summary .count.failed dd")).to_have_text("1")
    await expect(store.locator(".summary .errors")).to_contain_text("Product 5")
    values = [v for v in await page.evaluate("() => window.__bar") if v is not None]
    assert values and values[-1] == 100 and values == sorted(values), values
    await shots(page, "sync-now-summary-with-error")


async def test_sync_chosen_products_while_history_stays_open(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    integration_id = await connect(api, gated_store)
    await first_run(gw, integration_id)
    name = f"My {gated_store.platform} store"
    await sign_in(page, f"{api.url}/", api.token())
    store = card(page, name)
    history = store.locator("details.history-section")
    await history.locator("summary").click()
    await expect(history.locator("li.run-row")).to_have_count(1)
    products = store.locator("details.products-section")
    await products.locator("summary").click()
    ids = products.get_by_label("Store product IDs")
    await ids.fill("3, 4")  # half-typed: not sent yet

    # Updates arrive from elsewhere: a sync started through the API, store changes by webhook.
    run = await api.query(
        "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id } }", {"id": integration_id}
    )
    await wait_run(gw, run["syncNow"]["id"])
    gated_store.update_product("9", name="Renamed in the store")
    # The store's change shows as the hour's digest of store notifications, beside the two syncs.
    digest = history.locator("li.run-row", has_text="Store changes")
    await expect(digest).to_contain_text("1 change applied from store notifications")
    await expect(history.locator("li.run-row")).to_have_count(3)
    await expect(history.locator("li.run-row", has_text="Sync Now (full catalog)")).to_contain_text("Succeeded")
    await expect(history).to_have_attribute("open", "")
    await expect(products).to_have_attribute("open", "")
    await expect(ids).to_have_value("3, 4")
    await shots(page, "history-open-while-updates-arrive")

    # Find a product's store id by its title, add it, and sync just those products.
    await products.get_by_label("Find products by title").fill("Toy product 7 ✓")
    await products.get_by_role("button", name="Find").click()
    await products.get_by_role("button", name="Add Toy product 7 ✓ (ID 7)").click()
    await expect(ids).to_have_value("3, 4, 7")
    await ids.fill("3, 4, 7, 999")  # and one the store does not have
    await products.get_by_role("button", name="Sync these products").click()
    await expect(store.locator(".summary h4")).to_contain_text("Sync succeeded")
    await expect(history.locator("li.run-row").first).to_contain_text("chosen products")
    await expect(store.locator(".summary .count.unchanged dd")).to_have_text("3")
    not_found = store.locator(".summary .errors")
    await expect(not_found.locator("h5")).to_have_text("Not found in the store")
    await expect(not_found.locator("li")).to_have_text(
        "Product 999: The store has no product with id '999' (NOT_FOUND)"
    )
    await expect(history).to_have_attribute("open", "")
    latest = (await gw.runs.latest(integration_id, 1))[0]
    assert latest.kind == "PRODUCTS" and sorted(latest.product_ids) == ["3", "4", "7", "999"]
    await shots(page, "chosen-products-synced")

    log = store.locator("details.activity-section")
    await log.locator("summary").click()
    await expect(log.locator("li[data-kind=WEBHOOK_CHANGES_APPLIED]")).to_contain_text(
        "1 change applied from store notifications: 1 updated"
    )
    await shots(page, "store-changes-in-the-activity-log")


async def test_conflict_side_by_side_reapply_and_activity_log(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    gated_store.deliver_webhooks = False  # the store's change arrives with the Sync Now below
    integration_id = await connect(api, gated_store)
    await first_run(gw, integration_id)
    name = f"My {gated_store.platform} store"
    pid = product_id(integration_id, "2")
    await api.query(
        'mutation($id: ID!) { editProduct(productId: $id, input: {title: "Alana title"}) { id } }', {"id": pid}
    )
    await sign_in(page, f"{api.url}/", api.token())
    store = card(page, name)
    conflicts = store.locator("details.conflicts")
    await conflicts.locator("summary").click()
    await expect(conflicts.get_by_text("No conflicts")).to_be_visible()

    gated_store.update_product("2", name="Store title")
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    await expect(store.locator(".summary .count.conflicts dd")).to_have_text("1")
    conflict = conflicts.locator("li.conflict")
    await expect(conflict).to_have_count(1)
    await expect(conflicts.locator("summary")).to_contain_text("(1)")
    await expect(conflict.locator(".side.store .value")).to_have_text("Store title")
    await expect(conflict.locator(".side.alana .value")).to_have_text("Alana title")
    await expect(conflict.locator(".product-title")).to_have_text("Store title (ID 2)")
    await shots(page, "conflict-side-by-side")

    await conflict.get_by_role("button", name="Re-apply Alana's change to title").click()
    await expect(conflict.locator(".conflict-status")).to_have_text("Alana's change was re-applied.")
    await expect(conflict.locator(".conflict-status")).to_be_focused()
    product = (await api.query("query($id: ID!) { product(id: $id) { title } }", {"id": pid}))["product"]
    assert product["title"] == "Alana title"
    await shots(page, "conflict-reapplied")

    log = store.locator("details.activity-section")
    await log.locator("summary").click()
    await expect(log.locator("li[data-kind=CONFLICT]")).to_have_count(1)
    await expect(log.locator("li[data-kind=CHANGE_REAPPLIED]")).to_have_count(1)
    await expect(log.locator("li[data-kind=INTEGRATION_CONNECTED]")).to_have_count(1)
    await expect(log.locator("li").first.locator("time")).to_have_attribute("title", re.compile(r"\d{4}"))
    await shots(page, "activity-log")


async def test_light_goes_red_with_its_action_when_the_store_fails(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    integration_id = await connect(api, gated_store)
    await first_run(gw, integration_id)
    name = f"My {gated_store.platform} store"
    await sign_in(page, f"{api.url}/", api.token())
    store = card(page, name)
    await expect(card(page, name, "GREEN")).to_be_visible()
    await expect(store.locator(".action")).to_be_empty()

    gated_store.faults.set(burst_500=10_000)  # the store is down
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    await expect(card(page, name, "RED")).to_be_visible()
    await expect(store.locator(".reason")).to_contain_text("The last sync failed")
    await expect(store.locator(".status-word")).to_have_text("Error")
    retry = store.get_by_role("button", name=f"Retry the sync of {name}")
    await expect(retry).to_be_visible()
    await expect(store.locator(".summary h4")).to_contain_text("Sync failed")
    # Why, with the code a frontend maps, said once (not again as a list entry).
    await expect(store.locator(".summary .failure")).to_have_text(
        re.compile(r"^the store answered 500 after \d+ tries \(STORE_UNREACHABLE\)$")
    )
    await expect(store.locator(".summary .errors")).to_have_count(0)
    await shots(page, "store-down-red-retry")

    gated_store.faults.reset()
    await retry.click()
    await expect(card(page, name, "GREEN")).to_be_visible()
    await expect(store.locator(".action")).to_be_empty()
    await shots(page, "retried-green")

    gated_store.token = "revoked"  # the merchant revoked Alana's key on the store
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    await expect(card(page, name, "RED")).to_be_visible()
    reconnect = store.get_by_role("button", name=f"Reconnect {name}")
    await expect(reconnect).to_be_visible()
    await shots(page, "credentials-rejected-red-reconnect")
    await reconnect.click()
    # The toy platform has no install flow: the same integration is reconnected with new keys.
    dialog = page.get_by_role("dialog", name=f"Reconnect {name}")
    await dialog.get_by_label("API token").fill("still-wrong")
    await dialog.get_by_role("button", name="Reconnect").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("refused these credentials")
    await shots(page, "reconnect-refused-keys")
    await dialog.get_by_label("API token").fill(gated_store.token)
    await dialog.get_by_role("button", name="Reconnect").click()
    await expect(dialog).to_be_hidden()
    await expect(card(page, name, "GREEN")).to_be_visible()
    assert [i["id"] for i in (await api.query("{ integrations { id } }"))["integrations"]] == [integration_id]
    await shots(page, "reconnected-with-keys-green")


async def test_cancel_a_sync_and_disconnect_after_confirming(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, page: Any, shots: Shots
) -> None:
    integration_id = await connect(api, gated_store)
    await first_run(gw, integration_id)
    name = f"My {gated_store.platform} store"
    await sign_in(page, f"{api.url}/", api.token())
    store = card(page, name)

    gated_store.close_gate(from_page=1)
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    cancel = store.get_by_role("button", name="Cancel sync")
    await expect(cancel).to_be_visible()
    await expect(store.locator("progress")).to_have_attribute("data-status", "RUNNING")
    # The gate opens only once the cancel request was answered: opened earlier, the run could finish first.
    async with page.expect_response(
        lambda r: r.url.endswith("/graphql") and "cancelSyncRun" in (r.request.post_data or "")
    ):
        await cancel.click()
    gated_store.open_gate()
    await expect(store.locator(".summary h4")).to_contain_text("Sync cancelled")
    await expect(cancel).to_be_hidden()
    await shots(page, "sync-cancelled")

    await store.get_by_role("button", name="Disconnect").click()
    confirm = page.get_by_role("dialog", name=f"Disconnect {name}?")
    await expect(confirm).to_contain_text("deletes the stored credentials")
    await shots(page, "disconnect-confirmation")
    await confirm.get_by_role("button", name="Keep connected").click()
    await expect(confirm).to_be_hidden()
    await expect(store).to_be_visible()
    assert len((await api.query("{ integrations { id } }"))["integrations"]) == 1

    await store.get_by_role("button", name="Disconnect").click()
    await confirm.get_by_role("button", name="Disconnect").click()
    await expect(store).to_have_count(0)
    await expect(page.get_by_text(f"Disconnected {name}.")).to_be_visible()
    await expect(page.get_by_text("No store is connected yet")).to_be_visible()
    assert (await api.query("{ integrations { id } }"))["integrations"] == []
    await shots(page, "disconnected")
