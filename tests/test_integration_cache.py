"""The webhook endpoint's integration cache (`IntegrationStore.get_cached`): never older than
CACHE_SECONDS, and an entry in use is read again in the background before it expires, so a steady
stream of deliveries never waits for MongoDB."""

from __future__ import annotations

import time

from gwtest import Api, connect

from gateway.integration_store import CACHE_SECONDS, REFRESH_AFTER
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator


async def test_an_entry_in_use_is_read_again_in_the_background_before_it_expires(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    store = gw.integration_store
    integration_id = await connect(api, toy_store)
    first = await store.get_cached(integration_id)
    assert first is not None
    # Renamed behind the cache's back (as another API would): this process has not heard of it.
    await gw.db.integrations.update_one({"_id": integration_id}, {"$set": {"name": "Renamed elsewhere"}})
    assert (await store.get_cached(integration_id)) is first  # young: answered from memory, no read
    assert integration_id not in store._loading

    _, doc = store._cache[integration_id]
    aged = time.monotonic() + CACHE_SECONDS * (1 - REFRESH_AFTER) * 0.5  # past the refresh point, still valid
    store._cache[integration_id] = (aged, doc)
    assert (await store.get_cached(integration_id)) is first  # still answers at once ...
    reading = store._loading[integration_id]  # ... and reads it again meanwhile
    assert (await reading) is not None
    refreshed = await store.get_cached(integration_id)
    assert refreshed is not None and refreshed.name == "Renamed elsewhere"

    # Expired: the caller waits for the read, as before.
    await gw.db.integrations.update_one({"_id": integration_id}, {"$set": {"name": "Renamed again"}})
    store._cache[integration_id] = (time.monotonic() - 1, refreshed)
    again = await store.get_cached(integration_id)
    assert again is not None and again.name == "Renamed again"
